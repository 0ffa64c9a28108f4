package assets

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"mime"
)

// ComposeJS drives the pruning composer page (web/compose.templ).
const ComposeJS = "compose.js"

//go:embed compose.js
var composeJS []byte

// init registers compose.js beside the files of assets.go, at its checksum URL
// like every other asset. (It is embedded here, not in assets.go's list, so
// that the composer stays in its own files; folding it into that list later
// changes nothing.)
func init() {
	sum := sha256.Sum256(composeJS)
	sha8 := hex.EncodeToString(sum[:4])
	hashed := "compose." + sha8 + ".js"
	urls[ComposeJS] = Prefix + hashed
	served[hashed] = asset{data: composeJS, ctype: mime.TypeByExtension(".js"), etag: `"` + sha8 + `"`}
}
