package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// Output formats.
//
// -o json prints what the REST API answers, field for field, in the API's
// own spelling: enum values are the API's names (STATE_PENDING, KIND_PIN,
// STATUS_ACTIVE), so a script written against `curl` works against the CLI
// and filters take the values it sees. -o yaml is the same document in
// YAML. The table prints those same enum names, never a shortened form, so
// the three formats agree (docs/cli.md).
//
// Nothing the server sends reaches the terminal raw: a hostile name or
// description must not move the cursor, retitle the window, write the
// clipboard or reorder text. Table cells and plain text go through
// printable; JSON and YAML escape the same runes in their own syntax, so a
// parser reads the same values.

// printMessage writes m as JSON or YAML, or calls table for the table form.
func (g *globals) printMessage(m proto.Message, table func(w *tabwriter.Writer)) error {
	switch g.output {
	case "json", "yaml":
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: true}.Marshal(m)
		if err != nil {
			return err
		}
		if g.output == "yaml" {
			b, err = safeYAML(b)
		} else {
			b = escapeJSON(b)
		}
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(g.stdout, strings.TrimRight(string(b), "\n"))
		return err
	default:
		w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		table(w)
		return w.Flush()
	}
}

// row writes one table row; every cell is made printable, which also
// keeps a tab or newline in a value from breaking the columns.
func row(w io.Writer, cols ...string) {
	for i, c := range cols {
		cols[i] = printable(c)
	}
	fmt.Fprintln(w, strings.Join(cols, "\t"))
}

// morePages writes the hint to the next page under a table.
func morePages(w *tabwriter.Writer, next string) {
	if next == "" {
		return
	}
	_ = w.Flush() // a failed write shows on the next
	row(w)
	row(w, "more: --page-token "+next)
}

// unsafeRune reports whether r must not reach a terminal as it is: C0 and
// C1 controls and DEL (escape sequences move the cursor, recolour, retitle
// the window, write the clipboard; a C1 CSI does the same in one rune),
// format characters (bidi overrides and isolates such as U+202E, zero-width
// characters, tag characters: text that reads other than it is), line and
// paragraph separators, and noncharacters.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' ||
		unicode.Is(unicode.Noncharacter_Code_Point, r)
}

// escapeRune writes r as Go and YAML spell it: \t \n \r, \x1b below 0x80,
// \u202e, \U000e0001.
func escapeRune(b *strings.Builder, r rune) {
	switch {
	case r == '\t':
		b.WriteString(`\t`)
	case r == '\n':
		b.WriteString(`\n`)
	case r == '\r':
		b.WriteString(`\r`)
	case r < 0x80:
		fmt.Fprintf(b, `\x%02x`, r)
	case r <= 0xffff:
		fmt.Fprintf(b, `\u%04x`, r)
	default:
		fmt.Fprintf(b, `\U%08x`, r)
	}
}

// printable returns s with every unsafe rune escaped (ESC as \x1b, U+202E
// as \u202e) and every byte that is not UTF-8 as \xNN; other text, and
// backslashes, stay as they are. It is for the eye: the exact value is in
// -o json.
func printable(s string) string {
	return escapeText(s, false)
}

// printableText is printable for a multi-line document shown on a
// terminal: newlines and tabs stay.
func printableText(s string) string {
	return escapeText(s, true)
}

func escapeText(s string, keepLayout bool) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case keepLayout && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case unsafeRune(r):
			escapeRune(&b, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// escapeJSON writes every unsafe rune of a JSON text as a \u escape. The
// encoder escapes only C0 controls; DEL, C1 controls and format characters
// pass raw. In valid JSON such a rune can only be inside a string, where the
// escape decodes to the same rune: the document means the same. Tabs,
// newlines and carriage returns are left alone: outside strings they are
// the layout, and inside they are already escaped.
func escapeJSON(b []byte) []byte {
	if !bytes.ContainsFunc(b, func(r rune) bool { return r != '\t' && r != '\n' && r != '\r' && unsafeRune(r) }) {
		return b
	}
	var out bytes.Buffer
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r != '\t' && r != '\n' && r != '\r' && unsafeRune(r) && n > 0 {
			if r > 0xffff {
				hi, lo := utf16.EncodeRune(r)
				fmt.Fprintf(&out, `\u%04x\u%04x`, hi, lo)
			} else {
				fmt.Fprintf(&out, `\u%04x`, r)
			}
		} else {
			out.Write(b[:n])
		}
		b = b[n:]
	}
	return out.Bytes()
}

// safeYAML converts a JSON document to YAML as sigs.k8s.io/yaml does, except
// that a string (or key) holding an unsafe rune is written double-quoted
// with the rune escaped. The YAML emitter escapes controls itself but
// writes format characters such as U+202E raw, even in plain scalars, where
// no escape exists; so such strings go through the emitter as a marker that
// forces double quotes and are put back escaped.
func safeYAML(j []byte) ([]byte, error) {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	m := &yamlMarkers{nonce: hex.EncodeToString(nonce[:])}
	doc = m.replace(doc)
	if len(m.values) == 0 {
		return yaml.JSONToYAML(j)
	}
	marked, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	y, err := yaml.JSONToYAML(marked)
	if err != nil {
		return nil, err
	}
	out := string(y)
	for i, v := range m.values {
		// The emitter writes the marker's NULs as \0, and must quote it.
		out = strings.ReplaceAll(out, `"\0`+m.marker(i)+`\0"`, `"`+yamlQuoted(v)+`"`)
	}
	return []byte(out), nil
}

// yamlMarkers swaps the strings of a decoded JSON document that hold an
// unsafe rune for numbered markers.
type yamlMarkers struct {
	nonce  string
	values []string
}

func (m *yamlMarkers) marker(i int) string { return fmt.Sprintf("pylee-%s-%d", m.nonce, i) }

func (m *yamlMarkers) swap(s string) string {
	// Tabs and newlines the emitter handles itself.
	if !strings.ContainsFunc(s, func(r rune) bool { return r != '\t' && r != '\n' && unsafeRune(r) }) {
		return s
	}
	m.values = append(m.values, s)
	return "\x00" + m.marker(len(m.values)-1) + "\x00"
}

func (m *yamlMarkers) replace(v any) any {
	switch v := v.(type) {
	case string:
		return m.swap(v)
	case []any:
		for i := range v {
			v[i] = m.replace(v[i])
		}
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[m.swap(k)] = m.replace(x)
		}
		return out
	}
	return v
}

// yamlQuoted is s as the inside of a YAML double-quoted scalar, with the
// escapes printable uses (all of them valid in YAML).
func yamlQuoted(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case unsafeRune(r):
			escapeRune(&b, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isTerminal reports whether f is an interactive terminal: a character
// device other than the null device. (Without golang.org/x/term among the
// module's dependencies this is the portable test; /dev/null, what a
// script or CI job often gives as standard input, is a character device
// too.)
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok || file == nil {
		return false
	}
	fi, err := file.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}

// writeDocument writes a downloaded document (an export, a server.json):
// exactly as received to a file or pipe, escaped to a terminal (JSON with
// \u escapes, so it still reads as the same JSON).
func (g *globals) writeDocument(b []byte, isJSON bool) error {
	if isTerminal(g.stdout) {
		if isJSON {
			b = escapeJSON(b)
		} else {
			b = []byte(printableText(string(b)))
		}
	}
	_, err := g.stdout.Write(b)
	return err
}
