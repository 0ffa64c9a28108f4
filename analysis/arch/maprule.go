package arch

import (
	"fmt"
	"regexp"
	"strings"
)

// MapRule is a user rule 'REGEX=>REPLACEMENT' (the --map flag). It is applied to
// BASE names with regexp.ReplaceAllString, so the replacement uses Go's $1 / ${name}
// syntax; the result is looked up among the VLA names.
type MapRule struct {
	Pattern     *regexp.Regexp
	Replacement string
	Source      string // the rule as the user wrote it, for messages
}

// ParseMapRule parses 'REGEX=>REPLACEMENT', split at the first "=>". The
// replacement may be empty (to strip a prefix, say); the regex may not.
func ParseMapRule(s string) (MapRule, error) {
	pattern, replacement, ok := strings.Cut(s, "=>")
	if !ok {
		return MapRule{}, fmt.Errorf("map rule %q: missing \"=>\" (want REGEX=>REPLACEMENT)", s)
	}
	if pattern == "" {
		return MapRule{}, fmt.Errorf("map rule %q: empty regex before \"=>\"", s)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return MapRule{}, fmt.Errorf("map rule %q: bad regex: %v", s, err)
	}
	return MapRule{Pattern: re, Replacement: replacement, Source: s}, nil
}

// apply returns the rewritten base name and whether the rule matched at all.
func (r MapRule) apply(name string) (string, bool) {
	if r.Pattern == nil || !r.Pattern.MatchString(name) {
		return "", false
	}
	return r.Pattern.ReplaceAllString(name, r.Replacement), true
}
