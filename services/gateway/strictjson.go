package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/jsonlimit"
)

// MaxJSONDepth bounds the nesting of a REST request body. Pylee's own
// documents nest far less (server.json has its own, lower limit); the bound
// keeps a hostile body from costing deep recursion anywhere downstream.
const MaxJSONDepth = 64

// strictJSON is the REST facade's marshaler: grpc-gateway's JSONPb, with a
// decoder that takes exactly one JSON value of valid UTF-8 and bounded
// depth, and refuses anything after it (`{"a":1} trailing`, `{}{}`).
type strictJSON struct{ *runtime.JSONPb }

func (m strictJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		// limitBody has already bounded the body.
		b, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("read the request body: %w", errs.ErrInvalidArgument)
		}
		if err := CheckJSON(b, MaxJSONDepth); err != nil {
			return err
		}
		return m.JSONPb.NewDecoder(bytes.NewReader(b)).Decode(v)
	})
}

// CheckJSON reports a body that is not exactly one JSON value of valid
// UTF-8 nesting at most maxDepth arrays and objects.
func CheckJSON(b []byte, maxDepth int) error {
	if !utf8.Valid(b) {
		return errs.Field("body", "is not valid UTF-8")
	}
	if d := jsonlimit.Depth(b); d > maxDepth {
		return errs.Field("body", "nests %d levels deep; at most %d are allowed", d, maxDepth)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var first json.RawMessage
	if err := dec.Decode(&first); err != nil {
		return errs.Field("body", "is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errs.Field("body", "has data after the JSON value; send exactly one JSON object")
	}
	return nil
}
