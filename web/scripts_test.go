package web

import (
	"bytes"
	"context"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/a-h/templ"

	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/assets"
	"github.com/deltascope/deltascope/store"
)

var scriptSrc = regexp.MustCompile(`<script src="([^"]+)"`)

// Each page loads the shared module and its own module only (after the
// vendored libraries it needs): no page runs another page's code.
func TestEachPageLoadsOnlyItsScripts(t *testing.T) {
	done := goldenAnalysis(store.StatusDone)
	compose, err := NewComposePage(done, []prune.ModuleUnits{{Module: "llm.ffn_channel", Layers: []int{0, 1}, Sizes: []int{8, 8}, Units: 16}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	running := goldenAnalysis(store.StatusRunning)
	for _, c := range []struct {
		name string
		page templ.Component
		want []string
	}{
		{"home", HomeView(BuildHome(nil, "", nil)), []string{assets.CommonJS}},
		{"not found", NotFoundPage("x"), []string{assets.CommonJS}},
		{"job", JobPage(running, NewJobView(running, started.Add(time.Minute))), []string{assets.CommonJS, assets.JobJS}},
		{"new", NewPage(false), []string{assets.CommonJS, assets.TusJS, assets.NewJS}},
		{"compose", ComposePage(compose), []string{assets.ECharts, assets.CommonJS, assets.ComposeJS}},
		{"login", LoginPage(LoginView{}), nil},
	} {
		var buf bytes.Buffer
		if err := c.page.Render(context.Background(), &buf); err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for _, m := range scriptSrc.FindAllStringSubmatch(buf.String(), -1) {
			got = append(got, m[1])
		}
		for _, w := range c.want {
			want = append(want, assets.URL(w))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s loads %v, want %v", c.name, got, want)
		}
	}
}
