// Package assets embeds the dashboard's CSS, JavaScript and vendored libraries
// and serves them at checksum URLs (/assets/app.1a2b3c4d.js), so a browser can
// cache them for a year and still never runs a stale copy after an upgrade. No
// page ever loads anything from a CDN.
package assets

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed app.css login.css *.js vendor/*.js
var files embed.FS

// Prefix is where assets are served.
const Prefix = "/assets/"

type asset struct {
	data  []byte
	ctype string
	etag  string
}

var (
	// urls maps a source name (common.js, vendor/echarts-5.6.0.min.js) to its URL.
	urls = map[string]string{}
	// served maps a checksum file name (app.1a2b3c4d.js) to its content.
	served = map[string]asset{}
)

func init() {
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		sha8 := hex.EncodeToString(sum[:4])
		base := path.Base(p)
		ext := path.Ext(base)
		hashed := strings.TrimSuffix(base, ext) + "." + sha8 + ext
		urls[p] = Prefix + hashed
		served[hashed] = asset{data: data, ctype: mime.TypeByExtension(ext), etag: `"` + sha8 + `"`}
		return nil
	})
	if err != nil {
		panic("assets: " + err.Error()) // the embedded tree is fixed at build time
	}
}

// URL returns the checksum URL of an embedded file, by its name in this folder
// (e.g. "common.js", "vendor/htmx-2.0.11.min.js"). An unknown name is a
// programming error and panics at the first page render, in every test.
func URL(name string) string {
	u, ok := urls[name]
	if !ok {
		panic("assets: no embedded file " + name)
	}
	return u
}

// Names of the files pages refer to.
const (
	AppCSS = "app.css"
	// CommonJS is the shared module every page loads first (window.deltascope:
	// helpers, charts, the declarative behaviours); each page adds its own
	// module through web.PageMeta.Scripts.
	CommonJS = "common.js"
	// ComposeJS drives the pruning composer (web/compose.templ).
	ComposeJS = "compose.js"
	// JobJS follows a running analysis (web/job.templ).
	JobJS = "job.js"
	// NewJS drives the new-analysis page (web/new.templ).
	NewJS = "new.js"
	// LoginCSS styles the login page, which has no dashboard layout.
	LoginCSS = "login.css"
	ECharts  = "vendor/echarts-5.6.0.min.js"
	HTMX     = "vendor/htmx-2.0.11.min.js"
	// TusJS is tus-js-client's browser bundle: the new-analysis page uploads
	// with it (resumable, chunked, retried), as any tus client could.
	TusJS = "vendor/tus-4.3.1.min.js"
)

// Handler serves the checksum URLs under Prefix with year-long immutable cache
// headers; anything else under Prefix is 404, so an old page asking for a
// replaced file fails loudly instead of mixing versions.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := served[strings.TrimPrefix(r.URL.Path, Prefix)]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.ctype)
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.data))
	})
}
