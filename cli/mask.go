package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/internal/mkdirs"
)

// runMask resolves a recipe (a file or a built-in preset) against an analysis
// of the pair and writes one export. File exports (recipe, indices, masks) and
// folder exports (masked, sliced) appear whole or not at all.
func runMask(ctx context.Context, env Env, args []string) (err error) {
	fs := newFlagSet("mask", 0)
	bases := fs.List("base", "a source of the base model (repeatable): [PREFIX=]PATH")
	vlas := fs.List("vla", "a source of the VLA (repeatable): [PREFIX=]PATH")
	maps := fs.List("map", "an alignment rule 'REGEX=>REPLACEMENT' applied to base names (repeatable)")
	recipeFile := fs.String("recipe", "", "a recipe JSON file (as written by --export recipe)")
	preset := fs.String("preset", "", "a built-in recipe: "+strings.Join(prune.Presets(), ", "))
	export := fs.String("export", "", "what to write: "+strings.Join(prune.ExportKindNames(true), "|"))
	out := fs.String("out", "", "output file (recipe, indices, masks) or new folder (masked, sliced)")
	pf := addPairFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	kind, kindErr := prune.LookupExport(*export)
	switch {
	case len(*bases) == 0 || len(*vlas) == 0:
		return fmt.Errorf("mask: give at least one --base and one --vla\n%s", fs.Usage())
	case (*recipeFile == "") == (*preset == ""):
		return fmt.Errorf("mask: give exactly one of --recipe FILE and --preset NAME\n%s", fs.Usage())
	case kindErr != nil || !kind.Command:
		return fmt.Errorf("mask: --export %q must be one of %s", *export, strings.Join(prune.ExportKindNames(true), ", "))
	case *out == "":
		return fmt.Errorf("mask: --out PATH is required")
	}
	if _, err := os.Lstat(*out); err == nil {
		return fmt.Errorf("%s: already exists; choose a new path", *out)
	}
	// The export is written beside its destination and renamed into place, so
	// the parent folder must exist; make it, as one would expect of --out. If
	// the command fails or is interrupted, the folders it made go too.
	made, err := mkdirs.All(filepath.Dir(*out))
	if err != nil {
		return fmt.Errorf("%s: %v", filepath.Dir(*out), err)
	}
	defer func() {
		if err != nil {
			made.Remove()
		}
	}()
	recipe, err := loadMaskRecipe(*recipeFile, *preset)
	if err != nil {
		return err
	}

	po, err := pf.options()
	if err != nil {
		return err
	}
	res, err := analyzePair(ctx, env, *bases, *vlas, *maps, po, false)
	if err != nil {
		return err
	}
	base, err := checkpoint.OpenSide(*bases, checkpoint.Options{Context: ctx})
	if err != nil {
		return err
	}
	baseFP := prune.LayoutFingerprint(base)
	base.Close()
	vla, err := checkpoint.OpenSide(*vlas, checkpoint.Options{Context: ctx})
	if err != nil {
		return err
	}
	defer vla.Close()
	vlaFP := prune.LayoutFingerprint(vla)
	if strings.HasPrefix(recipe.VLAFingerprint, "layout-sha256:") && recipe.VLAFingerprint != vlaFP {
		fmt.Fprintf(env.Stderr, "warning: the recipe was composed on a VLA with another layout (%s)\n", recipe.VLAFingerprint)
	}
	recipe.BaseFingerprint, recipe.VLAFingerprint, recipe.EngineVersion = baseFP, vlaFP, analysis.EngineVersion

	m, err := prune.ResolveWith(res, recipe, prune.Options{VLATensors: prune.VLATensors(vla)})
	if err != nil {
		return err
	}

	if kind.Folder {
		err = kind.WriteFolder(ctx, *out, m, vla)
	} else {
		err = writeOutput(ctx, *out, func(w io.Writer) error {
			return kind.WriteFile(ctx, w, m, vla, strings.TrimSuffix(filepath.Base(*out), kind.Suffix))
		})
	}
	if err != nil {
		return err
	}
	p := m.Params
	fmt.Fprintf(env.Stdout, "%s: %s parameters → %s (−%.2f%%); wrote %s %s\n", recipe.Name, groupDigits(p.Before), groupDigits(p.After),
		100*float64(p.Before-p.After)/float64(max(p.Before, 1)), *export, *out)
	for _, w := range m.Warnings {
		fmt.Fprintf(env.Stdout, "warning: %s\n", w)
	}
	if *export == "masks" {
		fmt.Fprintf(env.Stdout, "\nApply in PyTorch:\n\n%s", prune.MaskSnippet(filepath.Base(*out)))
	}
	return nil
}

func loadMaskRecipe(file, preset string) (prune.Recipe, error) {
	if preset != "" {
		return prune.Preset(preset)
	}
	f, err := os.Open(file)
	if err != nil {
		return prune.Recipe{}, fmt.Errorf("%s: %v", file, plainPathErr(err))
	}
	defer f.Close()
	r, err := prune.ReadRecipe(f)
	if err != nil {
		return prune.Recipe{}, fmt.Errorf("%s: %v", file, err)
	}
	return r, nil
}
