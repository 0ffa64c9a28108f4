package web

import (
	"encoding/json"
	"slices"

	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/store"
)

// ComposeModule is a module family the analysis has units for.
type ComposeModule struct {
	Module string `json:"module"` // e.g. llm.ffn_channel
	Layers []int  `json:"layers"` // layer numbers (the projector: [-1])
	Units  int    `json:"units"`  // all layers together
	// Sizes are the units per layer, in Layers order (for the mask heatmap).
	Sizes []int `json:"sizes"`
}

// ComposePreset is a built-in recipe.
type ComposePreset struct {
	Name   string          `json:"name"`
	Recipe json.RawMessage `json:"recipe"`
}

// ComposeRecipeRef names a saved recipe of the analysis.
type ComposeRecipeRef struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// ComposeData is everything compose.js starts from (a JSON script).
type ComposeData struct {
	AnalysisID string             `json:"analysis_id"`
	RecipeID   int64              `json:"recipe_id,omitempty"`
	Name       string             `json:"name"`
	Note       string             `json:"note"`
	Recipe     json.RawMessage    `json:"recipe"`
	Modules    []ComposeModule    `json:"modules"`
	Presets    []ComposePreset    `json:"presets"`
	Recipes    []ComposeRecipeRef `json:"recipes"`
	// EditURL is this page editing a saved recipe, RecipeIDSlot for its id
	// (where the page goes once it saved or duplicated one).
	EditURL string     `json:"edit_url"`
	API     ComposeAPI `json:"api"`
}

// ComposeAPI are the endpoints the page calls (all made in urls.go); in the
// patterns the script puts a saved recipe's id at RecipeIDSlot and an export
// kind at KindSlot.
type ComposeAPI struct {
	Resolve     string `json:"resolve"`
	Recipes     string `json:"recipes"`      // GET lists, POST saves a new one
	Recipe      string `json:"recipe"`       // pattern: PATCH saves over one
	Duplicate   string `json:"duplicate"`    // pattern: POST copies one
	SavedExport string `json:"saved_export"` // pattern: a saved recipe's download
	Export      string `json:"export"`
}

// ComposeView is the composer page.
type ComposeView struct {
	Analysis *store.Analysis
	Data     ComposeData
}

// ExportKinds are the downloads a recipe offers, with their labels.
var ExportKinds = []struct{ Kind, Label, Hint string }{
	{"recipe", "Recipe (JSON)", "replayable with deltascope mask --recipe"},
	{"indices", "Indices (JSON)", "pruned rows and columns per tensor"},
	{"masks", "Masks (safetensors)", "U8 keep-masks per tensor dimension"},
	{"masks-snippet", "PyTorch snippet (.py)", "applies the masks file"},
	{"masked", "Masked checkpoint (.tar)", "the VLA's files with pruned cells zeroed"},
	{"sliced", "Sliced checkpoint (.tar)", "pruned units removed; config.json lists every layer's width (deltascope_sliced), which a per-layer loader reads: stock from_pretrained cannot build it, the masked checkpoint loads unchanged"},
}

// ComposeEdit is a saved recipe the composer opens, with its rules parsed.
type ComposeEdit struct {
	ID     int64
	Recipe prune.Recipe // Name and Note are the saved recipe's
}

// NewComposePage builds the composer of analysis a from what the handler
// fetched: the module families a rule can prune (prune.PrunableModules), the
// analysis's saved recipes, and the saved recipe to edit (nil: the page starts
// from the first preset whose modules all exist in this model, else from one
// 10 % rule on the first module).
func NewComposePage(a *store.Analysis, mods []prune.ModuleUnits, saved []store.Recipe, edit *ComposeEdit) (ComposeView, error) {
	data := ComposeData{
		AnalysisID: a.ID, Modules: make([]ComposeModule, len(mods)), Presets: []ComposePreset{}, Recipes: []ComposeRecipeRef{},
		EditURL: ComposeEditPattern(a.ID),
		API: ComposeAPI{Resolve: ResolveAPIURL(a.ID), Recipes: RecipesAPIURL(a.ID), Recipe: SavedRecipeAPIPattern(a.ID),
			Duplicate: DuplicateRecipeAPIPattern(a.ID), SavedExport: SavedExportPattern(a.ID), Export: InlineExportAPIURL(a.ID)},
	}
	present := map[string]bool{}
	for i, m := range mods {
		data.Modules[i] = ComposeModule{Module: m.Module, Layers: m.Layers, Sizes: m.Sizes, Units: m.Units}
		present[m.Module] = true
	}
	var start *prune.Recipe
	for _, name := range prune.Presets() {
		rc, err := prune.Preset(name)
		if err != nil {
			return ComposeView{}, err
		}
		raw, err := json.Marshal(rc)
		if err != nil {
			return ComposeView{}, err
		}
		data.Presets = append(data.Presets, ComposePreset{Name: name, Recipe: raw})
		if start == nil && slices.IndexFunc(rc.Rules, func(x prune.Rule) bool { return !present[x.Module] }) < 0 {
			start = &rc // the first preset that fits this model
		}
	}
	for _, rec := range saved {
		data.Recipes = append(data.Recipes, ComposeRecipeRef{ID: rec.ID, Name: rec.Name})
	}
	var rc prune.Recipe
	switch {
	case edit != nil:
		rc = edit.Recipe
		data.RecipeID = edit.ID
	case start != nil:
		rc = *start
	default:
		rc = prune.Recipe{Name: "recipe", Rules: []prune.Rule{}}
		if len(mods) > 0 {
			rc.Rules = append(rc.Rules, prune.Rule{Module: mods[0].Module, Ratio: 0.1, Direction: prune.DirHighest, Scope: prune.ScopeGlobal})
		}
	}
	data.Name, data.Note = rc.Name, rc.Note
	raw, err := json.Marshal(rc)
	if err != nil {
		return ComposeView{}, err
	}
	data.Recipe = raw
	return ComposeView{Analysis: a, Data: data}, nil
}
