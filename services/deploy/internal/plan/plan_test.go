package plan

import (
	"encoding/json"
	"reflect"
	"testing"
)

func doc(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBuild(t *testing.T) {
	npm := `{"name":"io.x/a","version":"1.0.0","packages":[{"registryType":"npm","identifier":"@x/srv","version":"1.2.3",
		"transport":{"type":"stdio"},
		"runtimeArguments":[{"type":"named","name":"--node-options","value":"--max-old-space-size=64"}],
		"packageArguments":[{"type":"positional","value":"stdio"},{"type":"named","name":"--region","isRequired":true}],
		"environmentVariables":[
			{"name":"API_KEY","isSecret":true,"isRequired":true},
			{"name":"MODE","default":"fast"},
			{"name":"URL","value":"https://{host}/v1?k=${secret:TOKEN}","variables":{"host":{"default":"api.x.io"}}},
			{"name":"OPTIONAL"}]}]}`
	cases := []struct {
		name    string
		doc     string
		choice  Choice
		vals    Values
		want    Plan
		wantErr bool
	}{
		{name: "npm with every input", doc: npm, choice: Choice{Runtime: NPM},
			vals: Values{"API_KEY": {Value: "k-1", Secret: true}, "region": {Value: "eu"}, "TOKEN": {Value: "t-9", Secret: true}},
			want: Plan{Runtime: NPM, Command: "npx", Transport: "stdio",
				Args:    []string{"--node-options", "--max-old-space-size=64", "-y", "@x/srv@1.2.3", "stdio", "--region", "eu"},
				Env:     []string{"API_KEY=k-1", "MODE=fast", "URL=https://api.x.io/v1?k=t-9"},
				Secrets: []string{"k-1", "t-9"}, Asks: true}},
		{name: "npm missing inputs named, never started", doc: npm, choice: Choice{Runtime: NPM}, vals: Values{},
			want: Plan{Runtime: NPM, Command: "npx", Transport: "stdio",
				Args:    []string{"--node-options", "--max-old-space-size=64", "-y", "@x/srv@1.2.3", "stdio"},
				Env:     []string{"MODE=fast", "URL=https://api.x.io/v1?k="},
				Missing: []string{"API_KEY", "TOKEN", "region"}, Asks: true}},
		{name: "a user's value makes it per user", doc: npm, choice: Choice{Runtime: NPM},
			vals: Values{"API_KEY": {Value: "mine", Secret: true, UserScope: true}, "region": {Value: "eu"}, "TOKEN": {Value: "t", Secret: true}},
			want: Plan{Runtime: NPM, Command: "npx", Transport: "stdio",
				Args:    []string{"--node-options", "--max-old-space-size=64", "-y", "@x/srv@1.2.3", "stdio", "--region", "eu"},
				Env:     []string{"API_KEY=mine", "MODE=fast", "URL=https://api.x.io/v1?k=t"},
				Secrets: []string{"mine", "t"}, UserScoped: true, Asks: true}},
		{name: "pypi", doc: `{"packages":[{"registryType":"pypi","identifier":"mcp-srv","version":"0.4.0","transport":{"type":"stdio"}}]}`,
			choice: Choice{Runtime: PyPI},
			want:   Plan{Runtime: PyPI, Command: "uvx", Args: []string{"mcp-srv==0.4.0"}, Transport: "stdio"}},
		{name: "remote with variables and headers", doc: `{"remotes":[{"type":"streamable-http","url":"https://{tenant}.x.io/mcp",
			"variables":{"tenant":{"isRequired":true}},"headers":[{"name":"Authorization","value":"Bearer ${secret:X_TOKEN}"}]}]}`,
			choice: Choice{Runtime: Remote}, vals: Values{"tenant": {Value: "acme"}, "X_TOKEN": {Value: "s3", Secret: true}},
			want: Plan{Runtime: Remote, Transport: "streamable-http", URL: "https://acme.x.io/mcp",
				Headers: map[string]string{"Authorization": "Bearer s3"}, Secrets: []string{"s3"}, Asks: true}},
		{name: "command", doc: `{"_meta":{"ai.pylee/command":{"command":"/bin/srv","args":["--key","${secret:K}"],
			"environmentVariables":[{"name":"FAIL_RATE","default":"0"}]}}}`,
			choice: Choice{Runtime: Command}, vals: Values{"K": {Value: "v", Secret: true}},
			want: Plan{Runtime: Command, Command: "/bin/srv", Args: []string{"--key", "v"}, Env: []string{"FAIL_RATE=0"},
				Transport: "stdio", Secrets: []string{"v"}, Asks: true}},
		{name: "unknown registry type", doc: `{"packages":[{"registryType":"nuget","identifier":"x"}]}`,
			choice: Choice{Runtime: "nuget"}, wantErr: true},
		{name: "index past the end", doc: `{"packages":[]}`, choice: Choice{Runtime: NPM, Index: 3}, wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Build(doc(t, c.doc), c.choice, c.vals)
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if c.wantErr {
				return
			}
			if got.Headers == nil && c.want.Headers == nil || len(got.Headers) == 0 && len(c.want.Headers) == 0 {
				got.Headers, c.want.Headers = nil, nil
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("plan\n got %#v\nwant %#v", got, c.want)
			}
		})
	}
}

func TestChoicesInDocumentOrder(t *testing.T) {
	got := Choices(doc(t, `{"_meta":{"ai.pylee/command":{"command":"x"}},"packages":[{"registryType":"oci"},{"registryType":"npm"}],"remotes":[{}]}`))
	want := []Choice{{Runtime: Command}, {Runtime: OCI}, {Runtime: NPM, Index: 1}, {Runtime: Remote}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("choices = %v, want %v", got, want)
	}
}
