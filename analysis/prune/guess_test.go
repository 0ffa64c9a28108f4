package prune

import (
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis"
)

// A head rule on a component whose geometry is a guess says so in the mask's
// warnings; the same rule on a recognised geometry does not; FFN rules never.
func TestHeadRuleOnGuessedGeometryWarns(t *testing.T) {
	res := *fixtureResult(t) // a shallow copy: GeometryGuessed is replaced, not edited
	rule := Rule{Module: ModSigLIPHead, Ratio: 0.25, Direction: DirHighest}
	ffn := Rule{Module: ModSigLIPFFN, Ratio: 0.25, Direction: DirHighest}
	warned := func(res *analysis.Result) (head, any bool) {
		m, err := Resolve(res, Recipe{Name: "t", Rules: []Rule{rule, ffn}})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range m.Warnings {
			if strings.Contains(w, "is a guess") {
				any = true
				head = head || strings.HasPrefix(w, "rule "+ModSigLIPHead+":") && strings.Contains(w, "--heads vision.siglip=")
			}
		}
		return head, any
	}
	res.GeometryGuessed = []string{}
	if _, any := warned(&res); any {
		t.Error("a recognised geometry was called a guess")
	}
	res.GeometryGuessed = []string{"vision.siglip"}
	head, _ := warned(&res)
	if !head {
		t.Error("no warning for a head rule on a guessed geometry")
	}
}
