package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/deltascope/deltascope/analysis/synth"
)

func runGen(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("gen", 0)
	preset := fs.String("preset", "", "one of: "+strings.Join(synth.Presets(), ", "))
	scale := fs.Float("scale", 1, "width scale in (0, 1]; 1 is the real model")
	out := fs.String("out", "", "output folder (base/ and vla/ are written inside)")
	shapeOnly := fs.Bool("shape-only", "write sparse all-zero files: real names and shapes, no disk used")
	seed := fs.Float("seed", 1, "random seed")
	series := fs.Int("series", 0, "write a training run instead of a pair: base/ and N checkpoints checkpoint-1000/, checkpoint-2000/, ... along one trajectory (--out must not exist)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *preset == "" || *out == "" {
		return fmt.Errorf("gen: --preset and --out are required\n%s", fs.Usage())
	}
	if *series != 0 {
		run, err := synth.GenerateSeries(ctx, synth.Options{Preset: *preset, Scale: *scale, Out: *out, ShapeOnly: *shapeOnly, Seed: uint64(*seed)}, *series)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "wrote %s (series.json lists it)\n  base: %s\n", *out, strings.Join(run.Base, " "))
		for _, c := range run.Checkpoints {
			fmt.Fprintf(env.Stdout, "  step %d: %s\n", c.Step, strings.Join(c.VLA, " "))
		}
		return nil
	}
	pair, err := synth.Generate(ctx, synth.Options{Preset: *preset, Scale: *scale, Out: *out, ShapeOnly: *shapeOnly, Seed: uint64(*seed)})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "wrote %s\n  base: %s\n  vla:  %s\n", *out, strings.Join(pair.Base, " "), strings.Join(pair.VLA, " "))
	return nil
}
