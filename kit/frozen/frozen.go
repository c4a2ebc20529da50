// Package frozen sends protobuf messages that never change again from
// their encoding, made once.
//
// A registry's entries are rendered once per change and then served to
// every caller of ListEntries as the same shared messages; encoding them
// again for each reply is most of what such a reply costs (a page of 100
// entries carries 100 server.json documents as google.protobuf.Struct).
// Keep encodes a message and remembers the bytes for as long as the
// message lives; the gRPC server's codec (Codec) sends a kept message,
// and each kept element of a reply's repeated message fields, as those
// bytes, without copying them.
//
// The side table is keyed by weak pointers, so it holds no message alive:
// an entry is dropped when its message is collected.
package frozen

import (
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"weak"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	protobuf "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// MaxBytes bounds the encodings kept at once; beyond it Keep keeps nothing
// more until collected messages make room (they are then encoded per
// reply, as without this package).
const MaxBytes = 256 << 20

var (
	table   sync.Map // weak.Pointer[T] (boxed) -> []byte
	keptLen atomic.Int64

	lookupsMu sync.RWMutex
	lookups   = map[reflect.Type]func(protobuf.Message) ([]byte, bool){}
)

// Keep encodes m and sends it as those bytes from now on. The caller
// promises that m is never changed again (nor anything it refers to).
// Keeping a message twice keeps its first encoding.
func Keep[T any, P interface {
	*T
	protobuf.Message
}](m P) error {
	key := weak.Make((*T)(m))
	if _, ok := table.Load(key); ok {
		return nil
	}
	b, err := protobuf.Marshal(m)
	if err != nil {
		return err
	}
	if keptLen.Load()+int64(len(b)) > MaxBytes {
		return nil
	}
	if _, loaded := table.LoadOrStore(key, b); loaded {
		return nil
	}
	keptLen.Add(int64(len(b)))
	n := int64(len(b))
	runtime.AddCleanup((*T)(m), func(k weak.Pointer[T]) {
		table.Delete(k)
		keptLen.Add(-n)
	}, key)

	t := reflect.TypeFor[P]()
	lookupsMu.RLock()
	_, ok := lookups[t]
	lookupsMu.RUnlock()
	if !ok {
		lookupsMu.Lock()
		lookups[t] = func(m protobuf.Message) ([]byte, bool) {
			v, ok := table.Load(weak.Make((*T)(m.(P))))
			if !ok {
				return nil, false
			}
			return v.([]byte), true
		}
		lookupsMu.Unlock()
	}
	return nil
}

// Encoding returns m's kept encoding, if it has one.
func Encoding(m protobuf.Message) ([]byte, bool) {
	lookupsMu.RLock()
	f, ok := lookups[reflect.TypeOf(m)]
	lookupsMu.RUnlock()
	if !ok {
		return nil, false
	}
	return f(m)
}

// Codec returns the gRPC codec that sends kept messages from their
// encoding: pass it to grpc.ForceServerCodecV2. It is the standard proto
// codec for everything else, and for decoding.
func Codec() encoding.CodecV2 {
	return codec{base: encoding.GetCodecV2(proto.Name)}
}

type codec struct{ base encoding.CodecV2 }

func (codec) Name() string { return proto.Name }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error { return c.base.Unmarshal(data, v) }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(protobuf.Message)
	if !ok {
		return c.base.Marshal(v)
	}
	if b, ok := Encoding(m); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	// The top-level repeated message fields whose first element is kept
	// are spliced from their elements' encodings; the rest of the message
	// is encoded as usual. Fields may come in any order on the wire.
	rm := m.ProtoReflect()
	var spliced []protoreflect.FieldDescriptor
	rm.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		if fd.IsList() && fd.Message() != nil && val.List().Len() > 0 {
			if _, ok := Encoding(val.List().Get(0).Message().Interface()); ok {
				spliced = append(spliced, fd)
			}
		}
		return true
	})
	if len(spliced) == 0 {
		return c.base.Marshal(v)
	}
	rest := rm.New()
	rm.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		for _, s := range spliced {
			if s == fd {
				return true
			}
		}
		rest.Set(fd, val)
		return true
	})
	rest.SetUnknown(rm.GetUnknown())
	head, err := protobuf.Marshal(rest.Interface())
	if err != nil {
		return nil, err
	}
	out := mem.BufferSlice{mem.SliceBuffer(head)}
	for _, fd := range spliced {
		list := rm.Get(fd).List()
		// One buffer for every element's tag and length.
		headers := make([]byte, 0, list.Len()*(protowire.SizeTag(fd.Number())+protowire.SizeVarint(1<<28)))
		for i := range list.Len() {
			elem := list.Get(i).Message().Interface()
			b, ok := Encoding(elem)
			if !ok {
				if b, err = protobuf.Marshal(elem); err != nil {
					return nil, err
				}
			}
			start := len(headers)
			headers = protowire.AppendTag(headers, fd.Number(), protowire.BytesType)
			headers = protowire.AppendVarint(headers, uint64(len(b)))
			out = append(out, mem.SliceBuffer(headers[start:len(headers):len(headers)]), mem.SliceBuffer(b))
		}
	}
	return out, nil
}
