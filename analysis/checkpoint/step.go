package checkpoint

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// stepName finds a training step in a path element: checkpoint-1000,
// step_2000, global_step3000, ckpt-4000, iter_5000, epoch-6.
var stepName = regexp.MustCompile(`(?i)(?:checkpoint|global_step|step|ckpt|iter|iteration|epoch)[-_]?(\d{1,12})`)

// StepFromPath reads the training step from the last element of a source's
// path that names one (checkpoint-1000/model.safetensors gives 1000), as
// training scripts name their checkpoints.
func StepFromPath(spec string) (int64, bool) {
	_, p := ParseSpec(spec)
	elems := strings.Split(filepath.ToSlash(p), "/")
	for i := len(elems) - 1; i >= 0; i-- {
		if m := stepName.FindStringSubmatch(elems[i]); m != nil {
			n, err := strconv.ParseInt(m[1], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
