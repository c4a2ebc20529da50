// Package config binds command-line flags to PYLEE_* environment variables
// and holds Secret, the type every credential has in memory.
package config

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// EnvName is the environment variable of a flag: PYLEE_ and the flag name
// upper-cased with hyphens as underscores (--data-dir: PYLEE_DATA_DIR).
func EnvName(flag string) string {
	return "PYLEE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// BindEnv sets every flag of fs that was not given on the command line from
// its environment variable, if set. Flags win over the environment, the
// environment over defaults.
func BindEnv(fs *pflag.FlagSet) error {
	var errs []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		v, ok := os.LookupEnv(EnvName(f.Name))
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			// The value may be a credential: name the variable, never echo it.
			errs = append(errs, fmt.Sprintf("%s: invalid value", EnvName(f.Name)))
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("environment: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Secret holds a credential. Every way of printing it masks it; Reveal is
// the one way to read it, and only code that hands it to its destination
// calls Reveal.
type Secret struct{ v string }

// NewSecret wraps v.
func NewSecret(v string) Secret { return Secret{v: v} }

// Reveal returns the plain value.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

const mask = "[redacted]"

func (s Secret) String() string { return mask }

// GoString masks %#v.
func (s Secret) GoString() string { return mask }

// MarshalText masks JSON, YAML and zap reflection output.
func (s Secret) MarshalText() ([]byte, error) { return []byte(mask), nil }

// Format masks every fmt verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(mask)) }

// SecretValue is a pflag.Value holding a Secret, so --token and the like
// never show their value in help or errors.
type SecretValue struct{ S *Secret }

func (v SecretValue) String() string {
	if v.S == nil || v.S.IsZero() {
		return ""
	}
	return mask
}

// Set stores the flag's value.
func (v SecretValue) Set(s string) error { *v.S = NewSecret(s); return nil }

// Type names the value in help.
func (v SecretValue) Type() string { return "secret" }
