// Package mdlite renders the small Markdown subset comments use: paragraphs,
// line breaks, bullet lists ("- " or "* "), **bold**, *italic*, `code`, and
// links to http(s) addresses ([text](https://…) or a bare https://…).
//
// Safety comes from the order of work: the whole text is HTML-escaped FIRST,
// so the input can no longer contain '<', '>', '"', '\” or a raw '&'; every
// tag in the output is one this package writes, and every attribute value it
// writes is escaped text, which cannot close its quotes. Links are only made
// for http:// and https:// (javascript:, data: and the like stay text).
package mdlite

import (
	"html"
	"regexp"
	"strconv"
	"strings"
)

// Render turns a comment into safe HTML.
func Render(src string) string {
	src = strings.Map(func(r rune) rune {
		// Control characters (NUL above all: placeholders use it) have no
		// business in a comment; tabs become spaces.
		switch {
		case r == '\n':
			return r
		case r == '\t':
			return ' '
		case r < 0x20 || r == 0x7f:
			return -1
		}
		return r
	}, strings.ReplaceAll(src, "\r\n", "\n"))
	esc := html.EscapeString(src)

	var b strings.Builder
	var para, items []string
	flushPara := func() {
		if len(para) > 0 {
			b.WriteString("<p>" + strings.Join(para, "<br>") + "</p>")
			para = nil
		}
	}
	flushList := func() {
		if len(items) > 0 {
			b.WriteString("<ul>")
			for _, it := range items {
				b.WriteString("<li>" + it + "</li>")
			}
			b.WriteString("</ul>")
			items = nil
		}
	}
	for _, line := range strings.Split(esc, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			flushPara()
			flushList()
		case strings.HasPrefix(trimmed, "- ") || strings.HasPrefix(trimmed, "* "):
			flushPara()
			items = append(items, inline(strings.TrimSpace(trimmed[2:])))
		default:
			flushList()
			para = append(para, inline(trimmed))
		}
	}
	flushPara()
	flushList()
	return b.String()
}

var (
	codeSpan = regexp.MustCompile("`([^`]+)`")
	// [text](url): text without brackets, url without spaces or parentheses.
	mdLink = regexp.MustCompile(`\[([^\[\]]+)\]\(([^()\s]+)\)`)
	// A bare address. In escaped text quotes are entities, so "&" may appear
	// only as the start of an entity, which is kept inside the address.
	bareURL = regexp.MustCompile(`(?i)\bhttps?://[^\s]+`)
	bold    = regexp.MustCompile(`\*\*([^*]+)\*\*`)
	italic  = regexp.MustCompile(`\*([^*\s](?:[^*]*[^*\s])?)\*`)
	slot    = regexp.MustCompile("\x00([0-9]+)\x00")
)

// inline formats one line of escaped text. Code spans and links are cut out
// first and parked in numbered slots, so emphasis never reaches into code or
// an address (where '*' is literal), then put back.
func inline(s string) string {
	var parked []string
	park := func(html string) string {
		parked = append(parked, html)
		return "\x00" + strconv.Itoa(len(parked)-1) + "\x00"
	}
	s = codeSpan.ReplaceAllStringFunc(s, func(m string) string {
		return park("<code>" + codeSpan.FindStringSubmatch(m)[1] + "</code>")
	})
	s = mdLink.ReplaceAllStringFunc(s, func(m string) string {
		sub := mdLink.FindStringSubmatch(m)
		if !webAddress(sub[2]) {
			return m // not http(s): left as the text it is
		}
		return park(anchor(sub[2], sub[1]))
	})
	s = bareURL.ReplaceAllStringFunc(s, func(m string) string {
		// Sentence punctuation after an address is not part of it.
		addr := strings.TrimRight(m, ".,;:!?)")
		for strings.HasSuffix(addr, "&#34;") || strings.HasSuffix(addr, "&#39;") {
			addr = addr[:len(addr)-5]
		}
		if !webAddress(addr) {
			return m
		}
		return park(anchor(addr, addr)) + m[len(addr):]
	})
	s = bold.ReplaceAllString(s, "<strong>$1</strong>")
	s = italic.ReplaceAllString(s, "<em>$1</em>")
	return slot.ReplaceAllStringFunc(s, func(m string) string {
		i, _ := strconv.Atoi(slot.FindStringSubmatch(m)[1])
		return parked[i]
	})
}

// webAddress accepts http:// and https:// addresses with a host.
func webAddress(escaped string) bool {
	lower := strings.ToLower(escaped)
	rest, ok := strings.CutPrefix(lower, "https://")
	if !ok {
		rest, ok = strings.CutPrefix(lower, "http://")
	}
	return ok && rest != "" && !strings.HasPrefix(rest, "/")
}

// anchor writes a link. href and text are already escaped; links open
// nothing of ours (noopener) and pass no referrer (comment links leave the lab).
func anchor(href, text string) string {
	return `<a href="` + href + `" rel="nofollow noopener noreferrer">` + text + `</a>`
}
