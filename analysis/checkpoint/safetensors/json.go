package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// headerParser walks the header JSON as a token stream rather than decoding it
// into maps, for two reasons:
//   - the schema is at most three levels deep, so a value that opens where a
//     string or number belongs is refused at that very token: nesting depth never
//     depends on the input ("[[[[…" 100k deep costs nothing);
//   - keys arrive one at a time, so duplicate names — which encoding/json would
//     silently resolve to the last one — are caught.
type headerParser struct {
	dec  *json.Decoder
	path string
}

// parseJSON decodes the header streamed by r; entries is the first pass's count
// of top-level keys, which sizes the list exactly (it is at most maxTensors+1).
func parseJSON(r io.Reader, path string, maxTensors, entries int) (*Header, error) {
	p := &headerParser{dec: json.NewDecoder(r), path: path}
	p.dec.UseNumber() // keep numbers as written, to refuse 2.0 or 1e3 as sizes
	tok, err := p.token()
	if err != nil {
		return nil, err
	}
	if !isDelim(tok, '{') {
		return nil, tensor.Errorf(path, "header is not a JSON object (it starts with %s)", describe(tok))
	}
	h := &Header{Entries: make([]Entry, 0, min(entries, maxTensors))}
	seen := make(map[string]struct{}, min(entries, maxTensors+1))
	for p.dec.More() {
		name, err := p.key()
		if err != nil {
			return nil, err
		}
		if len(name) > MaxNameLen { // before the name is kept, or quoted whole in an error
			return nil, tensor.Errorf(path, "tensor %d of the header has a name of %d bytes (%q…), over the limit of %d bytes "+
				"(real tensor names are under 200)", len(h.Entries)+1, len(name), name[:48], MaxNameLen)
		}
		if _, dup := seen[name]; dup {
			if name == metadataKey {
				return nil, tensor.Errorf(path, "%s is given twice", metadataKey)
			}
			return nil, tensor.TensorErrorf(path, name, "duplicate name in header: each tensor must be listed once")
		}
		seen[name] = struct{}{}
		if name == metadataKey {
			if h.Metadata, err = p.metadata(); err != nil {
				return nil, err
			}
			continue
		}
		if len(h.Entries) >= maxTensors {
			return nil, tensor.Errorf(path, "header lists more than %d tensors, the limit", maxTensors)
		}
		e, err := p.entry(name)
		if err != nil {
			return nil, err
		}
		h.Entries = append(h.Entries, e)
	}
	if err := p.expectDelim('}', "", "header object"); err != nil {
		return nil, err
	}
	// Only whitespace may follow the object (writers pad with spaces to align
	// the data section to 8 bytes).
	if tok, err := p.dec.Token(); err != io.EOF {
		what := "invalid JSON"
		if err == nil {
			what = describe(tok)
		}
		return nil, tensor.Errorf(path, "unexpected data after the header's JSON object (%s); only space padding may follow it", what)
	}
	return h, nil
}

// token returns the next token, turning decoder errors into *tensor.Error.
func (p *headerParser) token() (json.Token, error) {
	tok, err := p.dec.Token()
	if err == nil {
		return tok, nil
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, tensor.Errorf(p.path, "header is not valid JSON: it ends in the middle of a value")
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return nil, tensor.Errorf(p.path, "header is not valid JSON: %v at byte %d", syn, syn.Offset)
	}
	return nil, tensor.Errorf(p.path, "header is not valid JSON: %v", err)
}

func (p *headerParser) key() (string, error) {
	tok, err := p.token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok { // the decoder only yields strings in key position; be safe anyway
		return "", tensor.Errorf(p.path, "header is not valid JSON: object key is %s", describe(tok))
	}
	return s, nil
}

func (p *headerParser) expectDelim(d json.Delim, name, what string) error {
	tok, err := p.token()
	if err != nil {
		return err
	}
	if !isDelim(tok, d) {
		if name != "" {
			return tensor.TensorErrorf(p.path, name, "%s: expected %q, found %s", what, d, describe(tok))
		}
		return tensor.Errorf(p.path, "%s: expected %q, found %s", what, d, describe(tok))
	}
	return nil
}

// metadata reads the __metadata__ value: null or an object of strings.
func (p *headerParser) metadata() (map[string]string, error) {
	tok, err := p.token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil // the reference reads null as "no metadata"
	}
	if !isDelim(tok, '{') {
		return nil, tensor.Errorf(p.path, "%s is %s; it must be an object of string values", metadataKey, describe(tok))
	}
	md := make(map[string]string)
	for p.dec.More() {
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		if _, dup := md[k]; dup {
			return nil, tensor.Errorf(p.path, "%s lists key %q twice", metadataKey, k)
		}
		tok, err := p.token()
		if err != nil {
			return nil, err
		}
		v, ok := tok.(string)
		if !ok {
			return nil, tensor.Errorf(p.path, "%s value of %q is %s; metadata values must be strings", metadataKey, k, describe(tok))
		}
		md[k] = v
	}
	return md, p.expectDelim('}', "", metadataKey)
}

// entry reads {"dtype": ..., "shape": [...], "data_offsets": [b, e]}: exactly
// these three fields, each once.
func (p *headerParser) entry(name string) (Entry, error) {
	e := Entry{Name: name}
	tok, err := p.token()
	if err != nil {
		return e, err
	}
	if !isDelim(tok, '{') {
		return e, tensor.TensorErrorf(p.path, name, "entry is %s; it must be an object with dtype, shape and data_offsets", describe(tok))
	}
	var haveDType, haveShape, haveOffsets bool
	for p.dec.More() {
		field, err := p.key()
		if err != nil {
			return e, err
		}
		switch field {
		case "dtype":
			if haveDType {
				return e, tensor.TensorErrorf(p.path, name, "field dtype is given twice")
			}
			haveDType = true
			tok, err := p.token()
			if err != nil {
				return e, err
			}
			s, ok := tok.(string)
			if !ok {
				return e, tensor.TensorErrorf(p.path, name, "dtype is %s; it must be a string such as \"F32\"", describe(tok))
			}
			if e.DType, err = tensor.ParseDType(s); err != nil {
				return e, tensor.TensorErrorf(p.path, name, "unknown dtype %q", s)
			}
		case "shape":
			if haveShape {
				return e, tensor.TensorErrorf(p.path, name, "field shape is given twice")
			}
			haveShape = true
			if e.Shape, err = p.intArray(name, "shape", MaxRank); err != nil {
				return e, err
			}
		case "data_offsets":
			if haveOffsets {
				return e, tensor.TensorErrorf(p.path, name, "field data_offsets is given twice")
			}
			haveOffsets = true
			offs, err := p.intArray(name, "data_offsets", 2)
			if err != nil {
				return e, err
			}
			if len(offs) != 2 {
				return e, tensor.TensorErrorf(p.path, name, "data_offsets is %v; it must be [begin, end]", offs)
			}
			e.Begin, e.End = offs[0], offs[1]
		default:
			return e, tensor.TensorErrorf(p.path, name, "unknown field %q; a tensor entry has only dtype, shape and data_offsets", field)
		}
	}
	if err := p.expectDelim('}', name, "entry"); err != nil {
		return e, err
	}
	switch {
	case !haveDType:
		return e, tensor.TensorErrorf(p.path, name, "missing field dtype")
	case !haveShape:
		return e, tensor.TensorErrorf(p.path, name, "missing field shape")
	case !haveOffsets:
		return e, tensor.TensorErrorf(p.path, name, "missing field data_offsets")
	}
	if e.Shape == nil {
		e.Shape = []int64{} // a scalar: present but empty
	}
	return e, nil
}

// intArray reads an array of at most max non-negative integers.
func (p *headerParser) intArray(name, field string, max int) ([]int64, error) {
	tok, err := p.token()
	if err != nil {
		return nil, err
	}
	if !isDelim(tok, '[') {
		return nil, tensor.TensorErrorf(p.path, name, "%s is %s; it must be an array of non-negative integers", field, describe(tok))
	}
	var out []int64
	for p.dec.More() {
		if len(out) == max {
			return nil, tensor.TensorErrorf(p.path, name, "%s has more than %d numbers", field, max)
		}
		tok, err := p.token()
		if err != nil {
			return nil, err
		}
		n, problem := nonNegInt(tok)
		if problem != "" {
			return nil, tensor.TensorErrorf(p.path, name, "%s[%d] is %s; %s must be non-negative integers", field, len(out), problem, field)
		}
		out = append(out, n)
	}
	return out, p.expectDelim(']', name, field)
}

// nonNegInt accepts a JSON integer literal in [0, 2^63) — what the reference's
// usize accepts, less the values no int64 can hold — and otherwise says what
// the token is instead.
func nonNegInt(tok json.Token) (int64, string) {
	num, ok := tok.(json.Number)
	if !ok {
		return 0, describe(tok)
	}
	s := string(num)
	switch {
	case strings.HasPrefix(s, "-"):
		return 0, s + " (negative)"
	case strings.ContainsAny(s, ".eE"):
		return 0, s + " (not an integer)"
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, s + " (too large for 64 bits)"
	}
	return n, ""
}

func isDelim(tok json.Token, d json.Delim) bool {
	got, ok := tok.(json.Delim)
	return ok && got == d
}

// describe names a token for an error message, quoting at most a short prefix of
// strings so a hostile header cannot flood the message.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		switch v {
		case '{':
			return "an object"
		case '[':
			return "an array"
		}
		return fmt.Sprintf("%q", string(v))
	case string:
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return fmt.Sprintf("the string %q", v)
	case json.Number:
		s := string(v)
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return "the number " + s
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprintf("%v", tok)
}
