package aip

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// UpdatePaths resolves the update mask of an AIP-134 Update against the
// fields a client may change. A mask of `*` means all of them; an empty or
// missing mask means those populated in msg. A path outside updatable is an
// error naming it.
func UpdatePaths(mask *fieldmaskpb.FieldMask, msg proto.Message, updatable []string) ([]string, error) {
	if len(mask.GetPaths()) == 0 {
		var paths []string
		fields := msg.ProtoReflect().Descriptor().Fields()
		for _, p := range updatable {
			fd := fields.ByName(protoreflect.Name(p))
			if fd != nil && msg.ProtoReflect().Has(fd) {
				paths = append(paths, p)
			}
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("is empty and the resource sets none of the updatable fields %v", updatable)
		}
		return paths, nil
	}
	var paths []string
	for _, p := range mask.GetPaths() {
		p = ProtoPath(msg.ProtoReflect().Descriptor(), p)
		if p == "*" {
			if len(mask.GetPaths()) != 1 {
				return nil, fmt.Errorf("%q must be the only path", "*")
			}
			return slices.Clone(updatable), nil
		}
		if !slices.Contains(updatable, p) {
			return nil, fmt.Errorf("path %q is not an updatable field (updatable: %v)", p, updatable)
		}
		if !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	return paths, nil
}

// ProtoPath returns the field-name spelling of a mask path given in either
// spelling: `displayName` (the JSON name, as `updateMask=displayName` in a
// query sends it) becomes `display_name`. A path naming no field is returned
// as given, for the caller to refuse.
func ProtoPath(md protoreflect.MessageDescriptor, path string) string {
	segs := strings.Split(path, ".")
	for i, seg := range segs {
		if md == nil {
			return path
		}
		fd := md.Fields().ByName(protoreflect.Name(seg))
		if fd == nil {
			fd = md.Fields().ByJSONName(seg)
		}
		if fd == nil {
			return path
		}
		segs[i] = string(fd.Name())
		md = fd.Message()
	}
	return strings.Join(segs, ".")
}

// ApplyPaths copies the top-level fields named by paths from src to dst.
// Both must be the same message type; paths come from UpdatePaths.
func ApplyPaths(dst, src proto.Message, paths []string) {
	d, s := dst.ProtoReflect(), src.ProtoReflect()
	fields := d.Descriptor().Fields()
	for _, p := range paths {
		fd := fields.ByName(protoreflect.Name(p))
		if fd == nil {
			continue
		}
		if s.Has(fd) {
			d.Set(fd, s.Get(fd))
		} else {
			d.Clear(fd)
		}
	}
}
