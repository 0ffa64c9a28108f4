package synth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/deltascope/deltascope/analysis/arch"
)

// MaxSeriesSteps bounds how many checkpoints GenerateSeries writes.
const MaxSeriesSteps = 64

// SeriesStepEvery is the training-step spacing of generated checkpoints:
// checkpoint-1000, checkpoint-2000, ...
const SeriesStepEvery = 1000

// Series lists the SRC specs (relative to Options.Out) of a generated
// training run; GenerateSeries also writes it to Out/series.json, in the shape
// `POST /api/series` takes (to a server whose --root is Out), named after Out.
type Series struct {
	Name        string             `json:"name"`
	Base        []string           `json:"base"`
	Checkpoints []SeriesCheckpoint `json:"checkpoints"`
}

// SeriesCheckpoint is one checkpoint of a Series.
type SeriesCheckpoint struct {
	Step int      `json:"step"`
	VLA  []string `json:"vla"`
}

// progress is how far a component has moved towards its final ΔW at
// fraction x of the run. Components move at different paces, as in a real
// fine-tune: the freshly initialised projector early, the vision encoders
// steadily, the language model late; the drift page shows it.
func progress(component string, x float64) float64 {
	switch {
	case component == "projector":
		return math.Sqrt(x)
	case component == "llm" || component == "embed" || component == "lm_head":
		return x * x
	}
	return x
}

// GenerateSeries writes one base and n checkpoints of one deterministic
// training run under o.Out: base/ as Generate writes it, and
// checkpoint-1000/, checkpoint-2000/, ... where checkpoint t holds
// W_base + progress(component, t/n)·ΔW, ΔW being what Generate's VLA holds
// (the same seeds, so the last checkpoint is that VLA). Out must not exist; it
// is written under a temporary name and renamed, so it appears whole or not at
// all.
func GenerateSeries(ctx context.Context, o Options, n int) (*Series, error) {
	if o.Out == "" {
		return nil, errors.New("no output folder given")
	}
	if n < 1 || n > MaxSeriesSteps {
		return nil, fmt.Errorf("%d checkpoints: give 1 to %d", n, MaxSeriesSteps)
	}
	if o.ShapeOnly {
		return nil, errors.New("a series needs values: --shape-only writes none")
	}
	if _, err := os.Lstat(o.Out); !errors.Is(err, fs.ErrNotExist) {
		if err == nil {
			return nil, fmt.Errorf("%s already exists: a series is written into a new folder", o.Out)
		}
		return nil, err
	}
	m, err := buildModel(o.Preset, o.Scale)
	if err != nil {
		return nil, err
	}
	return writeNewFolder(ctx, o.Out, func(tmp string) (*Series, error) {
		into := o
		into.Out = tmp
		return seriesInto(ctx, m, into, n, filepath.Base(o.Out))
	})
}

func seriesInto(ctx context.Context, m *model, o Options, n int, name string) (*Series, error) {
	made := &created{}
	for i := range m.baseFiles {
		if err := writeFile(ctx, o, &m.baseFiles[i], false, made); err != nil {
			return nil, err
		}
	}
	var vlaExtras, baseExtras []string
	for p := range m.extra {
		if strings.HasPrefix(p, "vla/") {
			vlaExtras = append(vlaExtras, p)
		} else {
			baseExtras = append(baseExtras, p)
		}
	}
	slices.Sort(vlaExtras)
	slices.Sort(baseExtras)
	for _, p := range baseExtras {
		if err := writeSmall(made, filepath.Join(o.Out, filepath.FromSlash(p)), m.extra[p]); err != nil {
			return nil, err
		}
	}

	final := make(map[*spec]float64, len(m.specs))
	for _, s := range m.specs {
		final[s] = s.deltaRel
	}
	defer func() { // m is ours, but leave it as buildModel made it
		for s, d := range final {
			s.deltaRel = d
		}
	}()
	series := &Series{Name: name, Base: m.baseSpecs}
	for t := 1; t <= n; t++ {
		step := t * SeriesStepEvery
		dir := "checkpoint-" + strconv.Itoa(step)
		x := float64(t) / float64(n)
		for _, s := range m.specs {
			if s.vla == "" {
				continue
			}
			s.deltaRel = final[s] * progress(arch.Classify(s.vla, s.vlaShape).Component, x)
		}
		for i := range m.vlaFiles {
			f := m.vlaFiles[i]
			f.path = dir + "/" + strings.TrimPrefix(f.path, "vla/")
			if err := writeFile(ctx, o, &f, true, made); err != nil {
				return nil, err
			}
		}
		for _, p := range vlaExtras {
			dst := filepath.Join(o.Out, dir, filepath.FromSlash(strings.TrimPrefix(p, "vla/")))
			if err := writeSmall(made, dst, m.extra[p]); err != nil {
				return nil, err
			}
		}
		specs := make([]string, len(m.vlaSpecs))
		for i, s := range m.vlaSpecs {
			specs[i] = dir + strings.TrimPrefix(s, "vla")
		}
		series.Checkpoints = append(series.Checkpoints, SeriesCheckpoint{Step: step, VLA: specs})
	}
	data, err := json.MarshalIndent(series, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeSmall(made, filepath.Join(o.Out, "series.json"), append(data, '\n')); err != nil {
		return nil, err
	}
	return series, nil
}
