// Package server runs a Pylee process: one gRPC server and one HTTP server,
// a named, ordered interceptor chain, health, reflection, metrics, and a
// graceful shutdown that ends in a hard stop and then runs cleanups in
// reverse order.
package server
