package cli

import (
	"errors"
	"sort"
	"time"
)

var errNoChange = errors.New("nothing to update: give at least one of --display-name, --description, --overview")

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }
