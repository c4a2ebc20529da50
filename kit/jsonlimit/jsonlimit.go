// Package jsonlimit measures JSON text before anything decodes it, so a
// hostile document is refused before it costs recursion or memory.
package jsonlimit

// Depth is the deepest nesting of arrays and objects in the JSON text b,
// counted without decoding it (brackets inside strings do not count).
func Depth(b []byte) int {
	depth, max, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				max = depth
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return max
}
