// Package kit is the shared service kit of Pylee: what every service needs to
// run (server runner, config, logging, errors, AIP helpers, databases,
// authentication). It knows nothing of any one service.
package kit
