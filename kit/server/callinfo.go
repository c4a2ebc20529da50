package server

import "context"

// callInfo is what the interceptors learn about a call, shared between them
// through the context: recovery creates it, the others fill it in, the
// access log and recovery read it.
type callInfo struct {
	requestID     string
	principal     string
	clientAddress string
	userAgent     string
}

type callInfoKey struct{}

func withCallInfo(ctx context.Context) (context.Context, *callInfo) {
	ci := &callInfo{}
	return context.WithValue(ctx, callInfoKey{}, ci), ci
}

func callInfoFrom(ctx context.Context) *callInfo {
	if ci, ok := ctx.Value(callInfoKey{}).(*callInfo); ok {
		return ci
	}
	return &callInfo{}
}

// RequestID returns the request id of the call ctx belongs to.
func RequestID(ctx context.Context) string { return callInfoFrom(ctx).requestID }

// CallMeta is what is known about the client of a call.
type CallMeta struct {
	RequestID     string
	ClientAddress string
	UserAgent     string
}

// CallMetaFrom returns the client facts of the call ctx belongs to.
func CallMetaFrom(ctx context.Context) CallMeta {
	ci := callInfoFrom(ctx)
	return CallMeta{RequestID: ci.requestID, ClientAddress: ci.clientAddress, UserAgent: ci.userAgent}
}

// CallMetaContext returns ctx with the client facts of its incoming gRPC
// metadata read as the interceptors read them (request id, client address,
// user agent, each bounded), for code that handles a call outside the
// interceptor chain. No forwarded address is believed.
func CallMetaContext(ctx context.Context) context.Context {
	ctx, _ = withCallInfo(ctx)
	readCallInfo(ctx, nil)
	return ctx
}
