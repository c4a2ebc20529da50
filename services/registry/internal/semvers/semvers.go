// Package semvers holds Pylee's SemVer rules on top of
// github.com/Masterminds/semver/v3: strict SemVer 2.0.0 parsing, ordering
// by precedence, `latest`, next-version suggestions and ranges.
package semvers

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Parse parses a strict SemVer 2.0.0 version: three numbers, optional
// prerelease and build metadata, no `v` prefix, no leading zeros.
func Parse(s string) (*semver.Version, error) {
	if len(s) > 128 {
		return nil, fmt.Errorf("must be at most 128 characters")
	}
	v, err := semver.StrictNewVersion(s)
	if err != nil {
		return nil, fmt.Errorf("must be a SemVer 2.0.0 version such as 1.2.0, 2.0.0-rc.1 or 1.0.0+build.5: %v", err)
	}
	return v, nil
}

// Compare orders a and b by SemVer precedence (build metadata ignored):
// -1, 0 or 1.
func Compare(a, b *semver.Version) int { return a.Compare(b) }

// SortDesc sorts versions, highest precedence first; equal precedence
// keeps the input order.
func SortDesc(vs []*semver.Version) {
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].GreaterThan(vs[j]) })
}

// Range is a parsed SemVer range such as `^1.2`, `~1.4.0`,
// `>=1.0.0 <2.0.0` or `1.x`. A prerelease matches only when the range
// itself names a prerelease (e.g. `^2.0.0-0`).
type Range struct {
	raw string
	c   *semver.Constraints
}

// ParseRange parses a range.
func ParseRange(s string) (Range, error) {
	if s == "" || len(s) > 128 {
		return Range{}, fmt.Errorf("must be 1 to 128 characters")
	}
	c, err := semver.NewConstraint(s)
	if err != nil {
		return Range{}, fmt.Errorf("must be a SemVer range such as ^1.2, ~1.4.0 or >=1.0.0 <2.0.0: %v", err)
	}
	return Range{raw: s, c: c}, nil
}

// String returns the range as written.
func (r Range) String() string { return r.raw }

// Matches reports whether v is in the range.
func (r Range) Matches(v *semver.Version) bool { return r.c.Check(v) }

// Highest returns the highest version of vs in r, or nil.
func (r Range) Highest(vs []*semver.Version) *semver.Version {
	return at(vs, HighestIndex(vs, func(i int) bool { return r.Matches(vs[i]) }))
}

// Latest returns the highest version without a prerelease, or nil.
func Latest(vs []*semver.Version) *semver.Version {
	return at(vs, HighestIndex(vs, func(i int) bool { return vs[i].Prerelease() == "" }))
}

// HighestIndex returns the index of the highest of the versions keep
// accepts, or -1.
func HighestIndex(vs []*semver.Version, keep func(i int) bool) int {
	best := -1
	for i, v := range vs {
		if keep(i) && (best < 0 || v.GreaterThan(vs[best])) {
			best = i
		}
	}
	return best
}

func at(vs []*semver.Version, i int) *semver.Version {
	if i < 0 {
		return nil
	}
	return vs[i]
}

// Suggest returns the next version after the highest of existing for a
// bump of "patch", "minor" or "major", optionally as a prerelease
// `-<pre>.N`; 1.0.0 (or 1.0.0-<pre>.1) when there is none. A prerelease of
// the bumped version already published continues its numbering.
func Suggest(existing []*semver.Version, bump, pre string) (next string, from *semver.Version, err error) {
	if pre != "" {
		if _, err := semver.StrictNewVersion("1.0.0-" + pre); err != nil || strings.Contains(pre, ".") {
			return "", nil, fmt.Errorf("prerelease must be one identifier of [0-9A-Za-z-], e.g. rc")
		}
	}
	for _, v := range existing {
		if from == nil || v.GreaterThan(from) {
			from = v
		}
	}
	var base semver.Version
	switch {
	case from == nil:
		base = *semver.New(1, 0, 0, "", "")
	case from.Prerelease() != "" && pre != "":
		// 1.3.0-rc.1 with a prerelease asked for: stay on 1.3.0.
		base = *semver.New(from.Major(), from.Minor(), from.Patch(), "", "")
	case from.Prerelease() != "":
		// 1.3.0-rc.2 is the highest: the release is 1.3.0 itself.
		base = *semver.New(from.Major(), from.Minor(), from.Patch(), "", "")
		if bumped := bumpOf(from, bump); bumped.GreaterThan(&base) && !isRelease(from, bump) {
			base = bumped
		}
	default:
		base = bumpOf(from, bump)
	}
	switch bump {
	case "patch", "minor", "major":
	default:
		return "", nil, fmt.Errorf("bump must be patch, minor or major")
	}
	if pre == "" {
		return base.String(), from, nil
	}
	n := 1
	for _, v := range existing {
		if v.Major() != base.Major() || v.Minor() != base.Minor() || v.Patch() != base.Patch() {
			continue
		}
		id, num, ok := strings.Cut(v.Prerelease(), ".")
		if !ok || id != pre {
			continue
		}
		if k, err := strconv.Atoi(num); err == nil && k >= n {
			n = k + 1
		}
	}
	return fmt.Sprintf("%d.%d.%d-%s.%d", base.Major(), base.Minor(), base.Patch(), pre, n), from, nil
}

func bumpOf(v *semver.Version, bump string) semver.Version {
	switch bump {
	case "major":
		return v.IncMajor()
	case "minor":
		return v.IncMinor()
	default:
		return v.IncPatch()
	}
}

// isRelease reports whether releasing prerelease v is the bump asked for:
// 2.0.0-rc.1 is a major, 1.3.0-rc.1 a minor, 1.2.4-rc.1 a patch.
func isRelease(v *semver.Version, bump string) bool {
	switch bump {
	case "major":
		return v.Minor() == 0 && v.Patch() == 0
	case "minor":
		return v.Patch() == 0
	default:
		return true
	}
}
