package cli

import (
	"errors"
	"sort"
)

var errNoChange = errors.New("nothing to update: give at least one of --display-name, --description, --overview")

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}
