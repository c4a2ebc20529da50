package serverjson

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyleeai/pylee/kit/errs"
)

func TestValidDocuments(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/valid/*.json")
	if len(files) < 6 {
		t.Fatalf("want at least 6 valid documents, have %d", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Parse(b, "server_json")
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if !Equal(b, d.Marshal()) || !Equal(b, d.Indent()) {
			t.Errorf("%s: re-encoding changed the document", f)
		}
	}
}

func fieldsOf(err error) []string {
	var fe *errs.InvalidFieldsError
	if !errors.As(err, &fe) {
		return nil
	}
	var out []string
	for _, v := range fe.Violations {
		out = append(out, v.Field)
	}
	return out
}

func TestInvalidDocumentsNameThePath(t *testing.T) {
	const base = `"name":"com.acme/x","description":"d","version":"1.0.0"`
	tests := []struct{ doc, path string }{
		{`[]`, "server_json"},
		{`{`, "server_json"},
		{`{"description":"d","version":"1.0.0"}`, "server_json.name"},
		{`{"name":"acme","description":"d","version":"1.0.0"}`, "server_json.name"},
		{`{"name":"com.acme/x","version":"1.0.0"}`, "server_json.description"},
		{`{` + base + `,"title":""}`, "server_json.title"},
		{`{"name":"com.acme/x","description":"` + strings.Repeat("d", 101) + `","version":"1.0.0"}`, "server_json.description"},
		{`{"name":"com.acme/x","description":"d","version":"v1.0"}`, "server_json.version"},
		{`{` + base + `,"websiteUrl":"ftp://x"}`, "server_json.websiteUrl"},
		{`{` + base + `,"repository":{"url":"https://g/x"}}`, "server_json.repository.source"},
		{`{` + base + `,"icons":[{"src":"http://x/i.png"}]}`, "server_json.icons[0].src"},
		{`{` + base + `,"icons":[{"src":"https://x/i.png","sizes":["big"]}]}`, "server_json.icons[0].sizes[0]"},
		{`{` + base + `,"icons":[{"src":"https://x/i.png","theme":"blue"}]}`, "server_json.icons[0].theme"},
		{`{` + base + `,"bogus":1}`, "server_json.bogus"},
		{`{` + base + `,"packages":{}}`, "server_json.packages"},
		{`{` + base + `,"packages":[{"identifier":"x","transport":{"type":"stdio"}}]}`, "server_json.packages[0].registryType"},
		{`{` + base + `,"packages":[{"registryType":"apt","identifier":"x","transport":{"type":"stdio"}}]}`, "server_json.packages[0].registryType"},
		{`{` + base + `,"packages":[{"registryType":"npm","identifier":"x","version":"latest","transport":{"type":"stdio"}}]}`, "server_json.packages[0].version"},
		{`{` + base + `,"packages":[{"registryType":"npm","identifier":"x","version":"^1.2.3","transport":{"type":"stdio"}}]}`, "server_json.packages[0].version"},
		{`{` + base + `,"packages":[{"registryType":"npm","identifier":"x"}]}`, "server_json.packages[0].transport"},
		{`{` + base + `,"packages":[{"registryType":"npm","identifier":"x","transport":{"type":"carrier-pigeon"}}]}`, "server_json.packages[0].transport.type"},
		{`{` + base + `,"packages":[{"registryType":"npm","identifier":"x","transport":{"type":"streamable-http"}}]}`, "server_json.packages[0].transport.url"},
		{`{` + base + `,"packages":[{"registryType":"mcpb","identifier":"https://x/p.mcpb","transport":{"type":"stdio"}}]}`, "server_json.packages[0].fileSha256"},
		{`{` + base + `,"packages":[{"registryType":"npm","identifier":"x","fileSha256":"XYZ","transport":{"type":"stdio"}}]}`, "server_json.packages[0].fileSha256"},
		{`{` + base + `,"packages":[{"registryType":"npm","identifier":"x","transport":{"type":"stdio"},"packageArguments":[{"type":"positional"}]}]}`, "server_json.packages[0].packageArguments[0].value"},
		{`{` + base + `,"packages":[{"registryType":"npm","identifier":"x","transport":{"type":"stdio"},"runtimeArguments":[{"type":"named"}]}]}`, "server_json.packages[0].runtimeArguments[0].name"},
		{`{` + base + `,"packages":[{"registryType":"npm","identifier":"x","transport":{"type":"stdio"},"environmentVariables":[{"description":"no name"}]}]}`, "server_json.packages[0].environmentVariables[0].name"},
		{`{` + base + `,"packages":[{"registryType":"npm","identifier":"x","transport":{"type":"stdio"},"environmentVariables":[{"name":"A","format":"date"}]}]}`, "server_json.packages[0].environmentVariables[0].format"},
		{`{` + base + `,"packages":[{"registryType":"npm","identifier":"x","transport":{"type":"stdio"},"environmentVariables":[{"name":"TOKEN","isSecret":true,"value":"ghp_live_value"}]}]}`, "server_json.packages[0].environmentVariables[0].value"},
		{`{` + base + `,"packages":[{"registryType":"npm","identifier":"x","transport":{"type":"stdio"},"environmentVariables":[{"name":"TOKEN","isSecret":true,"default":"hunter2"}]}]}`, "server_json.packages[0].environmentVariables[0].default"},
		{`{` + base + `,"packages":[{"registryType":"npm","identifier":"x","transport":{"type":"stdio"},"environmentVariables":[{"name":"A","value":"${secret:9bad}"}]}]}`, "server_json.packages[0].environmentVariables[0].value"},
		{`{` + base + `,"remotes":[{"type":"stdio"}]}`, "server_json.remotes[0].type"},
		{`{` + base + `,"remotes":[{"type":"sse","url":"file:///x"}]}`, "server_json.remotes[0].url"},
		{`{` + base + `,"remotes":[{"type":"sse","url":"https://x","headers":[{"name":"Authorization","isSecret":true,"value":"Bearer abc"}]}]}`, "server_json.remotes[0].headers[0].value"},
		{`{` + base + `,"remotes":[{"type":"sse","url":"https://x","variables":{"v":{"isSecret":true,"default":"s3cret"}}}]}`, "server_json.remotes[0].variables.v.default"},
		{`{` + base + `,"_meta":[]}`, "server_json._meta"},
	}
	for _, tc := range tests {
		_, err := Parse([]byte(tc.doc), "server_json")
		if !errors.Is(err, errs.ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want invalid argument", tc.doc, err)
			continue
		}
		got := fieldsOf(err)
		found := false
		for _, f := range got {
			found = found || f == tc.path
		}
		if !found {
			t.Errorf("%s: fields %q, want %q", tc.doc, got, tc.path)
		}
		if strings.Contains(err.Error(), "ghp_live_value") || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error repeats the secret: %v", err)
		}
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../../testdata/valid/*.json")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte(`{"name":"a/b","description":"d","version":"1.0.0","packages":[{"registryType":"npm"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data, "server_json")
		if err != nil {
			if !errors.Is(err, errs.ErrInvalidArgument) {
				t.Fatalf("error is not invalid argument: %v", err)
			}
			return
		}
		// A valid document stays valid and equal through its stored form.
		again, err := Parse(d.Marshal(), "server_json")
		if err != nil {
			t.Fatalf("stored form of a valid document is invalid: %v", err)
		}
		if !Equal(d.Marshal(), again.Marshal()) {
			t.Fatal("stored form changed the document")
		}
	})
}

// TestHostileDocuments: the shapes a hostile or careless publisher sends
// are refused naming the field, and real documents with multi-byte text
// are accepted.
func TestHostileDocuments(t *testing.T) {
	const base = `"name":"com.acme/x","description":"d","version":"1.0.0"`
	deepMeta := `{` + base + `,"_meta":` + strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000) + `}`
	refused := []struct{ name, doc, path string }{
		{"5,000 levels of _meta", deepMeta, "server_json"},
		{"trailing garbage", `{` + base + `} trailing`, "server_json"},
		{"second document", `{` + base + `}{"a":1}`, "server_json"},
		{"closing brace after", `{` + base + `}}`, "server_json"},
		{"foreign schema", `{"$schema":"https://evil.example/x.json",` + base + `}`, "server_json.$schema"},
		{"older schema", `{"$schema":"https://static.modelcontextprotocol.io/schemas/2025-07-09/server.schema.json",` + base + `}`, "server_json.$schema"},
		{"ANSI escape in the title", `{` + base + `,"title":"\u001b[31mred"}`, "server_json.title"},
		{"NUL in the description", `{"name":"com.acme/x","description":"a\u0000b","version":"1.0.0"}`, "server_json.description"},
		{"invalid UTF-8", "{\"name\":\"com.acme/x\",\"description\":\"\xff\",\"version\":\"1.0.0\"}", "server_json"},
		{"101 emoji", `{"name":"com.acme/x","description":"` + strings.Repeat("🚀", 101) + `","version":"1.0.0"}`, "server_json.description"},
	}
	for _, tt := range refused {
		_, err := Parse([]byte(tt.doc), "server_json")
		if got := fieldsOf(err); len(got) == 0 || got[0] != tt.path {
			t.Errorf("%s: fields %v (%v), want %s", tt.name, got, err, tt.path)
		}
	}
	// The official registry's Airtable server: 100 characters, emoji included.
	desc := strings.Repeat("a", 96) + "📊🗂️"
	if n := len([]rune(desc)); n > 100 {
		t.Fatalf("test description has %d characters", n)
	}
	ok := `{"$schema":"` + SchemaURL + `","name":"com.acme/x","description":"` + desc + `","version":"1.0.0","_meta":{"a":{"b":{"c":[1,2,{"d":"[[[["}]}}}}`
	if _, err := Parse([]byte(ok), "server_json"); err != nil {
		t.Fatalf("a 100-character description with emoji and a shallow _meta: %v", err)
	}
}
