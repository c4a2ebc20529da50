// Package gateway is Pylee's edge: the REST facade (grpc-gateway) over the
// services' gRPC APIs now, and the MCP gateway and the official registry API
// as they come. It keeps no state of its own.
package gateway

// Target is the name of this service in `pylee serve --target`.
const Target = "gateway"
