package aip

import (
	"fmt"
	"strings"
)

// ValidateID checks a resource id chosen by a client for a top-level
// collection such as organizations: 3 to 63 characters of lowercase
// letters, digits and hyphens, starting with a letter.
func ValidateID(id string) error {
	if len(id) < 3 || len(id) > 63 {
		return fmt.Errorf("must be 3 to 63 characters, got %d", len(id))
	}
	return ValidateSegmentID(id)
}

// ValidateSegmentID checks an id inside a resource name: 1 to 63
// characters of lowercase letters, digits and hyphens, starting with a
// letter. Collections may ask more of ids clients choose (organizations:
// ValidateID).
func ValidateSegmentID(id string) error {
	if len(id) < 1 || len(id) > 63 {
		return fmt.Errorf("must be 1 to 63 characters, got %d", len(id))
	}
	if id[0] < 'a' || id[0] > 'z' {
		return fmt.Errorf("must start with a lowercase letter")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("may contain only lowercase letters, digits and hyphens, found %q at position %d", c, i)
		}
	}
	return nil
}

// Pattern is a resource name pattern such as `orgs/{org}/servers/{server}`:
// collection literals alternate with variables.
type Pattern struct {
	raw      string
	segments []segment
}

type segment struct {
	literal  string
	variable string
}

// MustPattern parses a pattern and panics on a malformed one; patterns are
// constants of the program.
func MustPattern(p string) Pattern {
	if p == "" {
		panic("aip: empty pattern")
	}
	var segs []segment
	for _, s := range strings.Split(p, "/") {
		switch {
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && len(s) > 2:
			segs = append(segs, segment{variable: s[1 : len(s)-1]})
		case s != "" && !strings.ContainsAny(s, "{}"):
			segs = append(segs, segment{literal: s})
		default:
			panic(fmt.Sprintf("aip: malformed pattern %q", p))
		}
	}
	return Pattern{raw: p, segments: segs}
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// Parse matches name against the pattern and returns the variables' values
// in order. Every value must be a valid segment id (ValidateSegmentID).
func (p Pattern) Parse(name string) ([]string, error) {
	return p.parse(name, ValidateSegmentID)
}

// ParseLoose is Parse without the id rules: values need only be non-empty
// and free of slashes. For names whose ids are not client-chosen slugs
// (semver versions, UUIDs, environment variable names).
func (p Pattern) ParseLoose(name string) ([]string, error) {
	return p.parse(name, func(string) error { return nil })
}

func (p Pattern) parse(name string, validate func(string) error) ([]string, error) {
	parts := strings.Split(name, "/")
	if len(parts) != len(p.segments) {
		return nil, fmt.Errorf("must have the form %s", p.raw)
	}
	var vals []string
	for i, seg := range p.segments {
		part := parts[i]
		if seg.literal != "" {
			if part != seg.literal {
				return nil, fmt.Errorf("must have the form %s", p.raw)
			}
			continue
		}
		if part == "" {
			return nil, fmt.Errorf("must have the form %s: {%s} is empty", p.raw, seg.variable)
		}
		if err := validate(part); err != nil {
			return nil, fmt.Errorf("{%s} %w", seg.variable, err)
		}
		vals = append(vals, part)
	}
	return vals, nil
}

// Format builds a name from the variables' values, in order. It allocates
// once: the name's length is known before it is written.
func (p Pattern) Format(values ...string) string {
	n := len(p.segments) - 1
	vi := 0
	for _, seg := range p.segments {
		if seg.literal != "" {
			n += len(seg.literal)
			continue
		}
		if vi < len(values) {
			n += len(values[vi])
		}
		vi++
	}
	var b strings.Builder
	b.Grow(n)
	vi = 0
	for i, seg := range p.segments {
		if i > 0 {
			b.WriteByte('/')
		}
		if seg.literal != "" {
			b.WriteString(seg.literal)
			continue
		}
		if vi < len(values) {
			b.WriteString(values[vi])
		}
		vi++
	}
	return b.String()
}
