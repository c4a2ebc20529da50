// Command benchratio reads `go test -bench` output on stdin and prints the
// rate of each GetOrganization path and REST ÷ gRPC, measured in one run
// against one server.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
)

var line = regexp.MustCompile(`^BenchmarkGetOrganization/(grpc|rest)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op.*?\s([\d.]+) req/s`)

func main() {
	rates := map[string]float64{}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if m := line.FindStringSubmatch(sc.Text()); m != nil {
			r, _ := strconv.ParseFloat(m[3], 64)
			rates[m[1]] = r
		}
	}
	grpcRate, restRate := rates["grpc"], rates["rest"]
	if grpcRate == 0 || restRate == 0 {
		fmt.Fprintln(os.Stderr, "benchratio: no GetOrganization results for both grpc and rest in the input")
		os.Exit(1)
	}
	fmt.Printf("\nGetOrganization, one pylee up, 8 concurrent callers per core:\n")
	fmt.Printf("  gRPC  %10.0f req/s\n", grpcRate)
	fmt.Printf("  REST  %10.0f req/s\n", restRate)
	fmt.Printf("  REST / gRPC = %.2f (goal >= 0.50)\n", restRate/grpcRate)
}
