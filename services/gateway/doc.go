// Package gateway is Pylee's edge: the REST facade (grpc-gateway) over the
// services' gRPC APIs, the audit export download and the official MCP
// Registry read API; the MCP gateway comes next. It keeps no state of its
// own.
package gateway

// Target is the name of this service in `pylee serve --target`.
const Target = "gateway"
