package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// printMessage writes m as JSON or YAML, or calls table for the table form.
func (g *globals) printMessage(m proto.Message, table func(w *tabwriter.Writer)) error {
	switch g.output {
	case "json", "yaml":
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: true}.Marshal(m)
		if err != nil {
			return err
		}
		if g.output == "yaml" {
			if b, err = yaml.JSONToYAML(b); err != nil {
				return err
			}
		}
		_, err = fmt.Fprintln(g.stdout, strings.TrimRight(string(b), "\n"))
		return err
	default:
		w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		table(w)
		return w.Flush()
	}
}

func row(w io.Writer, cols ...string) {
	fmt.Fprintln(w, strings.Join(cols, "\t"))
}
