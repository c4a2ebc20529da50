package aip

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// CheckText checks a human-readable field (a display name, title or
// description): valid UTF-8, at most max characters (characters, as JSON
// Schema counts them, not bytes), and no control characters
// (CheckPrintable). Fields of a request declare their limit in the proto
// (`string.max_len`, which counts characters too) and need only
// CheckPrintable; CheckText is for text that arrives otherwise (server.json).
func CheckText(s string, max int, multiline bool) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > max {
		return fmt.Errorf("must be at most %d characters, got %d", max, n)
	}
	return CheckPrintable(s, multiline)
}

// CheckPrintable checks that s is valid UTF-8 without control characters,
// which a terminal would execute (ANSI and OSC escape sequences) or a log
// would split on. Newlines and tabs are allowed only in multiline fields,
// the ones that hold Markdown (an overview, a tool description).
func CheckPrintable(s string, multiline bool) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("must be valid UTF-8")
	}
	for _, r := range s {
		if multiline && (r == '\n' || r == '\t' || r == '\r') {
			continue
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("must not contain control characters (found %U)", r)
		}
	}
	return nil
}
