package server

import (
	"context"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

type localMethod struct {
	impl    any
	handler grpc.MethodHandler
}

// InProcess returns a connection to this server's own services that makes
// unary calls without a network hop: no HTTP/2, no encoding of the request
// or the reply, but the same interceptor chain as a call from the network
// (request id, access log, metrics, status, authentication from the
// call's metadata, authorization, validation, the refusals' audit). The
// gateway calls the services that run in its process through it.
//
// The handler sees the caller's metadata as incoming metadata, a loopback
// peer (as a call over the loopback listener would), and no outgoing
// metadata of the caller's: a call it makes onwards carries only what it
// adds itself. The reply shares the handler's answer (no copy): callers
// must not change it. Streams, and methods not registered here, go to
// fallback.
func (s *Server) InProcess(fallback grpc.ClientConnInterface) grpc.ClientConnInterface {
	return &inProcess{s: s, fallback: fallback}
}

type inProcess struct {
	s        *Server
	fallback grpc.ClientConnInterface
	once     sync.Once
	chain    grpc.UnaryServerInterceptor
}

// inProcessPeer is the peer of an in-process call: loopback, like a call
// over the process's own listener.
var inProcessPeer = &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}

// Invoke implements grpc.ClientConnInterface.
func (c *inProcess) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	m, ok := c.s.local[method]
	in, okIn := args.(proto.Message)
	out, okOut := reply.(proto.Message)
	if !ok || !okIn || !okOut {
		return c.fallback.Invoke(ctx, method, args, reply, opts...)
	}
	c.once.Do(func() {
		var ics []grpc.UnaryServerInterceptor
		for _, ic := range c.s.Chain() {
			ics = append(ics, ic.Unary)
		}
		c.chain = chainUnary(ics)
	})
	md, _ := metadata.FromOutgoingContext(ctx)
	ictx := metadata.NewIncomingContext(ctx, md.Copy())
	ictx = metadata.NewOutgoingContext(ictx, metadata.MD{})
	ictx = peer.NewContext(ictx, inProcessPeer)
	st := &localStream{method: method}
	ictx = grpc.NewContextWithServerTransportStream(ictx, st)
	ictx = context.WithValue(ictx, inProcessKey{}, true)
	dec := func(v any) error {
		proto.Merge(v.(proto.Message), in)
		return nil
	}
	resp, err := m.handler(m.impl, ictx, dec, c.chain)
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = st.header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = st.trailer
		}
	}
	if err != nil {
		return err
	}
	if r, ok := resp.(proto.Message); ok && r != nil {
		shallowCopy(out, r)
	}
	return nil
}

// NewStream implements grpc.ClientConnInterface: streams go to fallback.
func (c *inProcess) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.fallback.NewStream(ctx, desc, method, opts...)
}

// shallowCopy sets dst's fields to src's, sharing lists, maps, bytes and
// messages.
func shallowCopy(dst, src proto.Message) {
	d, s := dst.ProtoReflect(), src.ProtoReflect()
	if d.Descriptor() != s.Descriptor() {
		proto.Merge(dst, src)
		return
	}
	s.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		d.Set(fd, v)
		return true
	})
}

// chainUnary runs ics in order around the handler, as grpc's own chain.
func chainUnary(ics []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		var next func(i int) grpc.UnaryHandler
		next = func(i int) grpc.UnaryHandler {
			if i == len(ics) {
				return handler
			}
			return func(ctx context.Context, req any) (any, error) { return ics[i](ctx, req, info, next(i+1)) }
		}
		return next(0)(ctx, req)
	}
}

// localStream is the grpc.ServerTransportStream of an in-process call: it
// keeps the headers and trailers the handler sets for the caller.
type localStream struct {
	method          string
	mu              sync.Mutex
	header, trailer metadata.MD
}

func (l *localStream) Method() string { return l.method }

func (l *localStream) SetHeader(md metadata.MD) error {
	l.mu.Lock()
	l.header = metadata.Join(l.header, md)
	l.mu.Unlock()
	return nil
}

func (l *localStream) SendHeader(md metadata.MD) error { return l.SetHeader(md) }

func (l *localStream) SetTrailer(md metadata.MD) error {
	l.mu.Lock()
	l.trailer = metadata.Join(l.trailer, md)
	l.mu.Unlock()
	return nil
}

type inProcessKey struct{}

// inProcessCall reports whether ctx is an in-process call's (InProcess):
// only Invoke sets the key, and no network call can.
func inProcessCall(ctx context.Context) bool {
	v, _ := ctx.Value(inProcessKey{}).(bool)
	return v
}
