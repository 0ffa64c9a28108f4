package handlers

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/deltascope/deltascope/analysis/prune"
)

// The export attack of issue 14: two slow downloads held both checkpoint
// export slots, and every other export waited behind them without end. Now a
// waiting export gets 429 with Retry-After after a short wait, slots are per
// user as well as global, a reader that stops reading is cut off (freeing its
// slot), and /healthz and pages answer others throughout.
func TestExportSlotsAndStalledReaders(t *testing.T) {
	// Far more than the socket buffers hold, so a client that stops reading
	// stalls the export.
	var id string
	const wait, stall = 300 * time.Millisecond, time.Second
	l := startLiveServer(t, testServerOptions{prepare: bigShapeOnlyAnalysis(t, &id), limited: true, config: func(c *Config) {
		c.Guard = Guard{MaxExports: 2, MaxExportsPerUser: 1, ExportWait: wait, ExportStall: stall}
	}})
	srv, ts := l.srv, l.Server
	body := fmt.Sprintf(`{"name": "ffn", "rules": [{"module": %q, "ratio": 0.1, "direction": "highest"}]}`, prune.ModLLMFFN)

	// export sends a masked export from the loopback address ip and returns
	// the answer's status and the connection, its body unread past 1 MB.
	export := func(ip byte) (int, http.Header, string, net.Conn) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, ip)}, Timeout: 5 * time.Second}
		conn, err := d.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(30 * time.Second)) // a guard against hanging, not a timing check
		fmt.Fprintf(conn, "POST /api/analyses/%s/export?kind=masked HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", id, len(body), body)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("export from 127.0.0.%d: %v", ip, err)
		}
		if resp.StatusCode != 200 {
			msg, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, resp.Header, string(msg), conn
		}
		if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
			t.Fatal(err)
		}
		return 200, resp.Header, "", conn // and never read again: a stalled reader
	}
	others := otherClient() // 127.0.0.2 has its own connection cap; these are GETs

	// Two users' downloads stall, holding both global slots.
	for _, ip := range []byte{10, 11} {
		if code, _, msg, _ := export(ip); code != 200 {
			t.Fatalf("export from 127.0.0.%d: %d %s", ip, code, msg)
		}
	}
	if n := srv.stats.exportsRunning.Load(); n != 2 {
		t.Fatalf("%d exports running, want 2", n)
	}
	// A third user waits briefly, then hears 429 with Retry-After.
	start := time.Now()
	code, hdr, msg, _ := export(12)
	waited := time.Since(start)
	if code != 429 || hdr.Get("Retry-After") == "" || !strings.Contains(msg, "(limit 2); retry shortly") || waited < wait || waited > wait+5*time.Second {
		t.Errorf("a third export while two stall: %d after %v, Retry-After %q, %s", code, waited.Round(time.Millisecond), hdr.Get("Retry-After"), msg)
	}
	// The same user as a stalled download is told it is theirs.
	if code, _, msg, _ := export(10); code != 429 || !strings.Contains(msg, "(limit 1 per user)") {
		t.Errorf("a second export of the same user: %d %s", code, msg)
	}
	// Others are served meanwhile.
	for _, p := range []string{"/healthz", "/", "/analyses/" + id} {
		resp, err := others.Get(ts.URL + p)
		if err != nil {
			t.Fatalf("%s while exports stall: %v", p, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s while exports stall: %d", p, resp.StatusCode)
		}
	}
	// The stalled readers are cut off after the stall timeout; the slots free.
	cut := time.Now()
	for srv.stats.exportsRunning.Load() != 0 {
		if time.Since(cut) > stall+10*time.Second {
			t.Fatalf("%d stalled exports still run %v later", srv.stats.exportsRunning.Load(), time.Since(cut).Round(time.Millisecond))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("stalled downloads cut %v after the third export's refusal", time.Since(cut).Round(time.Millisecond))
	if code, _, msg, _ := export(12); code != 200 {
		t.Errorf("an export once the stalled ones were cut: %d %s", code, msg)
	}
}
