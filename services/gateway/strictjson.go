package gateway

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
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

// Marshal implements runtime.Marshaler. A list of registry entries is the
// REST API's heaviest answer (each entry may carry its version's whole
// server.json) and is read far more often than it changes, so each entry's
// JSON is kept, keyed by what determines it, and a list joins them.
func (m strictJSON) Marshal(v any) ([]byte, error) {
	if l, ok := v.(*registryv1.ListEntriesResponse); ok {
		return m.marshalEntries(l)
	}
	return m.JSONPb.Marshal(v)
}

// entryJSON keeps the JSON of entries by entryKey; bounded.
var entryJSON = struct {
	sync.Mutex
	m     map[string][]byte
	bytes int
}{m: map[string][]byte{}}

// pageJSON keeps whole lists by the keys of their entries and their next
// page token: a page read again (the usual case: every client reads the
// first page) is written from memory without being joined again.
var pageJSON = struct {
	sync.Mutex
	m     map[string][]byte
	bytes int
}{m: map[string][]byte{}}

// Bounds of the kept entry and page JSON; beyond either, all of it is
// dropped.
const (
	maxEntryJSON      = 20_000
	maxEntryJSONBytes = 64 << 20
	maxPageJSON       = 1_000
	maxPageJSONBytes  = 32 << 20
)

// appendEntryKey appends what an entry's JSON depends on: the entry's
// name, revision and times (a re-created entry has another creation
// time), and its version's state. Names, versions and digests hold no NUL;
// the numbers are varints, which delimit themselves.
func appendEntryKey(b []byte, e *registryv1.Entry) []byte {
	d := e.GetVersionDetail()
	b = append(b, e.GetName()...)
	b = append(b, 0)
	b = binary.AppendVarint(b, e.GetRevision())
	ct, ut, dt := e.GetCreateTime(), e.GetUpdateTime(), d.GetUpdateTime()
	b = binary.AppendVarint(b, ct.GetSeconds())
	b = binary.AppendVarint(b, int64(ct.GetNanos()))
	b = binary.AppendVarint(b, ut.GetSeconds())
	b = binary.AppendVarint(b, int64(ut.GetNanos()))
	b = binary.AppendVarint(b, int64(e.GetVersionStatus()))
	b = binary.AppendVarint(b, dt.GetSeconds())
	b = binary.AppendVarint(b, int64(dt.GetNanos()))
	b = append(b, e.GetVersion()...)
	b = append(b, 0)
	b = append(b, d.GetDigest()...)
	if d != nil {
		b = append(b, "\x00full"...)
	}
	return b
}

// keyBuffers are the buffers marshalEntries builds keys in.
var keyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

func (m strictJSON) marshalEntries(l *registryv1.ListEntriesResponse) ([]byte, error) {
	entries := l.GetEntries()
	parts := make([][]byte, len(entries))
	buf := keyBuffers.Get().(*[]byte)
	keys := (*buf)[:0]
	defer func() {
		if cap(keys) <= 1<<20 {
			*buf = keys
			keyBuffers.Put(buf)
		}
	}()
	ends := make([]int, len(entries))
	for i, e := range entries {
		keys = appendEntryKey(keys, e)
		ends[i] = len(keys)
	}
	keyOf := func(i int) []byte {
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		return keys[start:ends[i]]
	}
	// The page's key: its entries' keys and its next page token (a token
	// is bound to its caller, so a page kept for one caller is found by
	// another only when both would be given the very same bytes).
	keys = append(keys, 1)
	keys = append(keys, l.GetNextPageToken()...)
	pageJSON.Lock()
	page, ok := pageJSON.m[string(keys)]
	pageJSON.Unlock()
	if ok {
		return page, nil
	}
	entryJSON.Lock()
	for i := range entries {
		parts[i] = entryJSON.m[string(keyOf(i))] // no allocation for the lookup
	}
	entryJSON.Unlock()
	size := 64 + len(l.GetNextPageToken())
	for i, e := range entries {
		if parts[i] == nil {
			b, err := m.JSONPb.Marshal(e)
			if err != nil {
				return nil, err
			}
			entryJSON.Lock()
			if len(entryJSON.m) >= maxEntryJSON || entryJSON.bytes+len(b) > maxEntryJSONBytes {
				entryJSON.m, entryJSON.bytes = map[string][]byte{}, 0
			}
			entryJSON.m[string(keyOf(i))] = b
			entryJSON.bytes += len(b) + len(keyOf(i))
			entryJSON.Unlock()
			parts[i] = b
		}
		size += len(parts[i]) + 1
	}
	token, err := json.Marshal(l.GetNextPageToken())
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, size)
	out = append(out, `{"entries":[`...)
	for i, b := range parts {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, b...)
	}
	out = append(out, `],"nextPageToken":`...)
	out = append(out, token...)
	out = append(out, '}')
	pageJSON.Lock()
	if len(pageJSON.m) >= maxPageJSON || pageJSON.bytes+len(out)+len(keys) > maxPageJSONBytes {
		pageJSON.m, pageJSON.bytes = map[string][]byte{}, 0
	}
	pageJSON.m[string(keys)] = out
	pageJSON.bytes += len(out) + len(keys)
	pageJSON.Unlock()
	return out, nil
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
