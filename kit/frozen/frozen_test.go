package frozen

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

func value(t *testing.T, i int) *structpb.Value {
	t.Helper()
	v, err := structpb.NewValue(map[string]any{"name": fmt.Sprintf("server-%d", i), "tags": []any{"a", "b", float64(i)},
		"nested": map[string]any{"deep": map[string]any{"ok": true}}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// decode is what a client receives.
func decode(t *testing.T, m proto.Message) *structpb.ListValue {
	t.Helper()
	data, err := Codec().Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	got := &structpb.ListValue{}
	if err := proto.Unmarshal(data.Materialize(), got); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestCodecSendsKeptElementsAsEncoded(t *testing.T) {
	list := &structpb.ListValue{}
	for i := range 50 {
		v := value(t, i)
		if i != 7 { // one element not kept: encoded per reply
			if err := Keep(v); err != nil {
				t.Fatal(err)
			}
		}
		list.Values = append(list.Values, v)
	}
	if _, ok := Encoding(list.Values[0]); !ok {
		t.Fatal("a kept message has no encoding")
	}
	if _, ok := Encoding(list.Values[7]); ok {
		t.Fatal("a message never kept has an encoding")
	}
	if got := decode(t, list); !proto.Equal(got, list) {
		t.Fatalf("spliced reply decodes to\n%v\nwant\n%v", got, list)
	}
	// The kept bytes are the message's encoding (map order aside: a
	// Struct's fields are encoded in no fixed order).
	b, _ := Encoding(list.Values[3])
	back := &structpb.Value{}
	if err := proto.Unmarshal(b, back); err != nil || !proto.Equal(back, list.Values[3]) {
		t.Fatalf("kept encoding decodes to %v (%v)", back, err)
	}
	// A kept message itself.
	if err := Keep(list); err != nil {
		t.Fatal(err)
	}
	if got := decode(t, list); !proto.Equal(got, list) {
		t.Fatal("a kept reply decodes to something else")
	}
}

func TestCodecWithoutKeptMessagesIsProto(t *testing.T) {
	list := &structpb.ListValue{Values: []*structpb.Value{value(t, 1), value(t, 2)}}
	if got := decode(t, list); !proto.Equal(got, list) {
		t.Fatal("plain message round trip differs")
	}
	empty := &structpb.ListValue{}
	if got := decode(t, empty); !proto.Equal(got, empty) {
		t.Fatal("empty message round trip differs")
	}
}

func TestKeptEncodingGoesWithItsMessage(t *testing.T) {
	before := keptLen.Load()
	func() {
		for i := range 100 {
			if err := Keep(value(t, i)); err != nil {
				t.Fatal(err)
			}
		}
	}()
	if keptLen.Load() <= before {
		t.Fatal("nothing was kept")
	}
	for deadline := time.Now().Add(10 * time.Second); keptLen.Load() > before; {
		if time.Now().After(deadline) {
			t.Fatalf("kept bytes stay at %d after their messages were collected (before: %d)", keptLen.Load(), before)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
