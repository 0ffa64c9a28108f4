package cli

import (
	"fmt"
	"strconv"
	"strings"
)

// flagSet parses GNU-style arguments where flags and positionals mix freely
// (`inspect a.safetensors --json b.safetensors`), which the standard flag package
// cannot do. Every flag is `--name value` or `--name=value`; booleans take no value.
type flagSet struct {
	cmd     string
	strs    map[string]*string
	lists   map[string]*[]string
	bools   map[string]*bool
	floats  map[string]*float64
	ints    map[string]*int
	usage   map[string]string
	order   []string
	args    []string // positionals
	allowed int      // max positionals, -1 for any
}

func newFlagSet(cmd string, positionals int) *flagSet {
	return &flagSet{cmd: cmd, strs: map[string]*string{}, lists: map[string]*[]string{}, bools: map[string]*bool{},
		floats: map[string]*float64{}, ints: map[string]*int{}, usage: map[string]string{}, allowed: positionals}
}

func (f *flagSet) String(name, def, usage string) *string {
	p := &def
	f.strs[name] = p
	f.describe(name, usage)
	return p
}

func (f *flagSet) List(name, usage string) *[]string {
	p := &[]string{}
	f.lists[name] = p
	f.describe(name, usage)
	return p
}

func (f *flagSet) Bool(name, usage string) *bool {
	p := new(bool)
	f.bools[name] = p
	f.describe(name, usage)
	return p
}

func (f *flagSet) Int(name string, def int, usage string) *int {
	p := &def
	f.ints[name] = p
	f.describe(name, usage)
	return p
}

func (f *flagSet) Float(name string, def float64, usage string) *float64 {
	p := &def
	f.floats[name] = p
	f.describe(name, usage)
	return p
}

func (f *flagSet) describe(name, usage string) {
	f.usage[name] = usage
	f.order = append(f.order, name)
}

// Usage lists the flags in declaration order.
func (f *flagSet) Usage() string {
	var b strings.Builder
	for _, n := range f.order {
		fmt.Fprintf(&b, "  --%-24s %s\n", n, f.usage[n])
	}
	return b.String()
}

func (f *flagSet) Parse(args []string) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			f.args = append(f.args, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			f.args = append(f.args, a)
			continue
		}
		name := strings.TrimLeft(a, "-")
		if name == "h" || name == "help" {
			return &helpRequest{flags: f.Usage()}
		}
		value, hasValue := "", false
		if j := strings.IndexByte(name, '='); j >= 0 {
			name, value, hasValue = name[:j], name[j+1:], true
		}
		if p, ok := f.bools[name]; ok {
			if hasValue {
				v, err := strconv.ParseBool(value)
				if err != nil {
					return fmt.Errorf("--%s: %q is not true or false", name, value)
				}
				*p = v
			} else {
				*p = true
			}
			continue
		}
		_, isStr := f.strs[name]
		_, isList := f.lists[name]
		_, isFloat := f.floats[name]
		_, isInt := f.ints[name]
		if !isStr && !isList && !isFloat && !isInt {
			return fmt.Errorf("%s: unknown flag %s", f.cmd, a)
		}
		if !hasValue {
			if i+1 >= len(args) {
				return fmt.Errorf("%s: flag --%s needs a value", f.cmd, name)
			}
			i++
			value = args[i]
		}
		switch {
		case isStr:
			*f.strs[name] = value
		case isList:
			*f.lists[name] = append(*f.lists[name], value)
		case isInt:
			v, err := strconv.Atoi(value)
			if err != nil {
				return fmt.Errorf("--%s: %q is not a whole number", name, value)
			}
			*f.ints[name] = v
		case isFloat:
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return fmt.Errorf("--%s: %q is not a number", name, value)
			}
			*f.floats[name] = v
		}
	}
	if f.allowed >= 0 && len(f.args) > f.allowed {
		return fmt.Errorf("%s: unexpected argument %q", f.cmd, f.args[f.allowed])
	}
	return nil
}

// helpRequest is returned by Parse for -h/--help: Main prints the command's usage
// on stdout and exits 0.
type helpRequest struct{ flags string }

func (h *helpRequest) Error() string { return "help requested" }
