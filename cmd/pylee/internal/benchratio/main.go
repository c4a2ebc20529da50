// Command benchratio reads `go test -bench` output on stdin and prints the
// rates and the ratios Pylee tracks, each pair measured in the same run:
// GetOrganization over REST ÷ gRPC, audit appends batched ÷ one by one, and
// org writes with the audit outbox ÷ without.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
)

var line = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+[\d.]+ ns/op.*?\s([\d.]+) (req/s|events/s|writes/s|checks/s)`)

func main() {
	rates := map[string]float64{}
	units := map[string]string{}
	var order []string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if m := line.FindStringSubmatch(sc.Text()); m != nil {
			r, _ := strconv.ParseFloat(m[2], 64)
			if _, ok := rates[m[1]]; !ok {
				order = append(order, m[1])
			}
			rates[m[1]], units[m[1]] = r, m[3]
		}
	}
	if len(order) == 0 {
		fmt.Fprintln(os.Stderr, "benchratio: no benchmark rates in the input")
		os.Exit(1)
	}
	fmt.Println("\nRates:")
	for _, name := range order {
		fmt.Printf("  %-50s %10.0f %s\n", name, rates[name], units[name])
	}
	fmt.Println("\nRatios (same run):")
	ratio := func(label, num, den, goal string) {
		a, b := rates[num], rates[den]
		if a == 0 || b == 0 {
			return
		}
		fmt.Printf("  %-50s %6.2f %s\n", label, a/b, goal)
	}
	ratio("GetOrganization REST / gRPC", "GetOrganization/rest", "GetOrganization/grpc", "(goal >= 0.50)")
	ratio("GetOrganization authorization on / off", "GetOrganizationAuthz/authz-on", "GetOrganizationAuthz/authz-off", "(goal >= 0.95)")
	for _, db := range []string{"sqlite", "postgres"} {
		ratio("audit append batch100 / batch1, "+db, "Append/"+db+"/batch100", "Append/"+db+"/batch1", "")
		ratio("org writes outbox on / off, "+db, "UpdateOrganization/"+db+"/outbox-on", "UpdateOrganization/"+db+"/outbox-off", "(goal >= 0.90)")
	}
}
