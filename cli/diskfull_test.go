//go:build linux

package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/deltascope/deltascope/internal/testfixtures"
)

// mountTmpfs mounts a tmpfs of the given size ("1m") on a fresh folder: a real
// disk that fills up. It needs root; without it the test is skipped, except
// under CI=true, where a missing capability is a broken CI, not a pass.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a %s tmpfs for the disk-full test: %v (CI runs as root)", size, err)
		}
		t.Skipf("cannot mount a tmpfs here (%v); the disk-full test needs root", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) }) // runs before TempDir's removal
	return dir
}

// `deltascope mask --export masked|sliced` onto a disk too small for the
// checkpoint (1 MiB; the fixture VLA is 2.7 MB): exit 1, one line on stderr
// naming the requested folder and the full disk, and nothing left on the disk.
func TestMaskExportDiskFull(t *testing.T) {
	for _, kind := range []string{"masked", "sliced"} {
		t.Run(kind, func(t *testing.T) {
			disk := mountTmpfs(t, "1m")
			out := filepath.Join(disk, "pruned")
			var stdout, stderr strings.Builder
			code := Main([]string{"mask", "--base", testfixtures.Path("pi05", "base"), "--vla", uploadFixture,
				"--preset", "pi05-light", "--export", kind, "--out", out}, Env{Stdout: &stdout, Stderr: &stderr})
			if code == 0 {
				t.Fatalf("exit 0 on a full disk; stdout %q", stdout.String())
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "deltascope: "+out+": the disk is full (no space left on device) while writing model.safetensors; the partial export was removed") {
				t.Errorf("stderr %q: want one line naming %s and the full disk", msg, out)
			}
			if left, _ := os.ReadDir(disk); len(left) != 0 {
				t.Errorf("the full disk still holds %v", left)
			}
			var st syscall.Statfs_t
			if err := syscall.Statfs(disk, &st); err != nil || st.Blocks != st.Bfree {
				t.Errorf("the tmpfs has %d of %d blocks in use after the failed export (%v)", st.Blocks-st.Bfree, st.Blocks, err)
			}
		})
	}
}

// The same export with room to spare succeeds on the same kind of disk, so the
// failure above is the disk's size and not the mount.
func TestMaskExportOnTmpfs(t *testing.T) {
	disk := mountTmpfs(t, "8m")
	out := filepath.Join(disk, "pruned")
	var stderr strings.Builder
	code := Main([]string{"mask", "--base", testfixtures.Path("pi05", "base"), "--vla", uploadFixture,
		"--preset", "pi05-light", "--export", "masked", "--out", out}, Env{Stdout: io.Discard, Stderr: &stderr})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(out, "model.safetensors")); err != nil {
		t.Error(err)
	}
}
