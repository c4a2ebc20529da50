// Command pylee runs Pylee's services (`pylee up`, `pylee serve`) and is
// its command-line client.
package main

import (
	"context"
	"os"

	"github.com/pyleeai/pylee/cmd/pylee/internal/cli"
)

func main() {
	os.Exit(cli.Execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
