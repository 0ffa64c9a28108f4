package mdlite

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"paragraphs and breaks", "one\ntwo\n\nthree", "<p>one<br>two</p><p>three</p>"},
		{"bold and italic", "**big** and *small*", "<p><strong>big</strong> and <em>small</em></p>"},
		{"code keeps stars", "`a*b*c` *x*", "<p><code>a*b*c</code> <em>x</em></p>"},
		{"bullet list", "intro\n- one\n* two\nafter", "<p>intro</p><ul><li>one</li><li>two</li></ul><p>after</p>"},
		{"link", "[paper](https://arxiv.org/abs/2606.31382)", `<p><a href="https://arxiv.org/abs/2606.31382" rel="nofollow noopener noreferrer">paper</a></p>`},
		{"bare link with trailing dot", "see http://x.example/a_b.", `<p>see <a href="http://x.example/a_b" rel="nofollow noopener noreferrer">http://x.example/a_b</a>.</p>`},
		{"stars inside a link stay", "https://x.example/*a*", `<p><a href="https://x.example/*a*" rel="nofollow noopener noreferrer">https://x.example/*a*</a></p>`},
		{"lone star", "2 * 3 = 6", "<p>2 * 3 = 6</p>"},
		{"ampersand query", "https://x.example/?a=1&b=2", `<p><a href="https://x.example/?a=1&amp;b=2" rel="nofollow noopener noreferrer">https://x.example/?a=1&amp;b=2</a></p>`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Render(tc.in); got != tc.want {
				t.Fatalf("Render(%q)\n got %s\nwant %s", tc.in, got, tc.want)
			}
		})
	}
}

// Injection attempts: whatever the input, the output holds no tag or
// attribute this package did not write.
func TestRenderCannotInject(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // a substring the output must contain
	}{
		{"script tag", "<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"},
		{"img onerror", `<img src=x onerror=alert(1)>`, "&lt;img src=x onerror=alert(1)&gt;"},
		{"javascript link", "[click](javascript:alert(1))", "[click](javascript:alert(1))"},
		{"javascript link, mixed case", "[click](JaVaScRiPt:alert(1))", "[click](JaVaScRiPt:alert(1))"},
		{"data link", "[x](data:text/html;base64,PHNjcmlwdD4=)", "[x](data:text/html;base64,PHNjcmlwdD4=)"},
		{"attribute break-out in a link", `[x](https://a.example/"onmouseover="alert(1))`, `href="https://a.example/&#34;onmouseover=&#34;alert(1"`},
		{"attribute break-out in a bare link", `https://a.example/'onclick='alert(1)`, `href="https://a.example/&#39;onclick=&#39;alert(1"`},
		{"quote in link text", `["><script>](https://a.example)`, `>&#34;&gt;&lt;script&gt;</a>`},
		{"protocol-relative", "[x](//evil.example)", "[x](//evil.example)"},
		{"empty host", "[x](https:///evil)", "[x](https:///evil)"},
		{"entity trick", "&lt;script&gt;", "&amp;lt;script&amp;gt;"},
		{"NUL placeholders", "a\x000\x00b `c`", "<p>a0b <code>c</code></p>"},
		{"code with tag", "`<b>x</b>`", "<code>&lt;b&gt;x&lt;/b&gt;</code>"},
		{"emphasis around tag", "**<i>x</i>**", "<strong>&lt;i&gt;x&lt;/i&gt;</strong>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Render(tc.in)
			if !strings.Contains(got, tc.want) {
				t.Fatalf("Render(%q) = %s\nwant it to contain %s", tc.in, got, tc.want)
			}
			checkOnlyOurMarkup(t, got)
		})
	}
}

// checkOnlyOurMarkup fails unless every tag in out is one Render writes and
// every attribute is href or rel of an anchor to http(s).
func checkOnlyOurMarkup(t *testing.T, out string) {
	t.Helper()
	allowed := map[string]bool{"p": true, "/p": true, "br": true, "ul": true, "/ul": true, "li": true, "/li": true,
		"strong": true, "/strong": true, "em": true, "/em": true, "code": true, "/code": true, "/a": true}
	for rest := out; ; {
		i := strings.IndexByte(rest, '<')
		if i < 0 {
			return
		}
		j := strings.IndexByte(rest[i:], '>')
		if j < 0 {
			t.Fatalf("unterminated tag in %s", out)
		}
		tag := rest[i+1 : i+j]
		rest = rest[i+j+1:]
		if allowed[tag] {
			continue
		}
		href, ok := strings.CutPrefix(tag, `a href="`)
		href, tail, ok2 := strings.Cut(href, `"`)
		if !ok || !ok2 || tail != ` rel="nofollow noopener noreferrer"` || !(strings.HasPrefix(href, "http://") || strings.HasPrefix(href, "https://")) {
			t.Fatalf("foreign markup <%s> in %s", tag, out)
		}
	}
}

func FuzzRender(f *testing.F) {
	for _, s := range []string{"**a** *b* `c`", "[x](https://a.example)", "<script>", "- a\n- b\n\nc", `https://a.example/"x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkOnlyOurMarkup(t, Render(s))
	})
}
