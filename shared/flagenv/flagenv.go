// Package flagenv is the one config path of every flashedge binary: a flag set whose every flag
// can also be given as an environment variable (FLASHEDGE_*), shown in -h, and the settings every
// service shares (Service), registered under the same names in every binary. Libraries take the
// plain values it fills; none of them reads the environment or registers a flag.
//
// A flag's value comes from, in order: the command line, its environment variable (an empty
// variable counts as unset), the default written where the flag is defined.
package flagenv

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Set is a binary's flags. Define the flags, then call Parse once. Not safe for concurrent use.
type Set struct {
	fs     *flag.FlagSet
	prefix string
	getenv func(string) string
	out    io.Writer
	flags  []*Flag
	hidden map[string]bool
	// secrets are variables read from the environment only (flags show in ps).
	secrets []secret
	after   []func() error
	parsed  bool
	// synopsis is printed first by -h; argsOK lets Parse accept arguments after the flags.
	synopsis string
	argsOK   bool
}

// Flag is one defined flag; Env renames the variable that sets it.
type Flag struct {
	name, env string
}

type secret struct {
	dst        *string
	env, usage string
}

// New returns an empty set for the binary name. A flag's variable is prefix followed by its name
// in upper case with '-' as '_' (prefix "FLASHEDGE_": -log-format is FLASHEDGE_LOG_FORMAT) unless
// Flag.Env names another. getenv is os.Getenv in main and a map in tests; -h and errors are
// written to out.
func New(name, prefix string, getenv func(string) string, out io.Writer) *Set {
	s := &Set{fs: flag.NewFlagSet(name, flag.ContinueOnError), prefix: prefix, getenv: getenv, out: out, hidden: map[string]bool{}}
	s.fs.SetOutput(out)
	s.fs.Usage = s.usage
	return s
}

// Synopsis sets the first line -h prints, such as "usage: probe [flags] URL".
func (s *Set) Synopsis(line string) { s.synopsis = line }

// AllowArgs lets Parse accept arguments after the flags; Args returns them.
func (s *Set) AllowArgs() { s.argsOK = true }

// Args are the arguments after the flags (AllowArgs).
func (s *Set) Args() []string { return s.fs.Args() }

// Name is the binary's name given to New.
func (s *Set) Name() string { return s.fs.Name() }

func (s *Set) define(name string) *Flag {
	f := &Flag{name: name, env: s.prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
	s.flags = append(s.flags, f)
	return f
}

// Env sets the variable that sets the flag (for names kept from before the flag existed, such
// as FLASHEDGE_CART_LISTEN for -addr). It returns f.
func (f *Flag) Env(name string) *Flag {
	f.env = name
	return f
}

// Label names a defined flag and its variable for error messages: "-log-level (FLASHEDGE_LOG_LEVEL)".
func (s *Set) Label(name string) string {
	for _, f := range s.flags {
		if f.name == name {
			return "-" + name + " (" + f.env + ")"
		}
	}
	return "-" + name
}

// EnvName is the variable that sets the flag.
func (f *Flag) EnvName() string { return f.env }

// String defines a string flag.
func (s *Set) String(p *string, name, def, usage string) *Flag {
	s.fs.StringVar(p, name, def, usage)
	return s.define(name)
}

// Int defines an int flag.
func (s *Set) Int(p *int, name string, def int, usage string) *Flag {
	s.fs.IntVar(p, name, def, usage)
	return s.define(name)
}

// Int64 defines an int64 flag.
func (s *Set) Int64(p *int64, name string, def int64, usage string) *Flag {
	s.fs.Int64Var(p, name, def, usage)
	return s.define(name)
}

// Uint64 defines a uint64 flag.
func (s *Set) Uint64(p *uint64, name string, def uint64, usage string) *Flag {
	s.fs.Uint64Var(p, name, def, usage)
	return s.define(name)
}

// Float64 defines a float64 flag.
func (s *Set) Float64(p *float64, name string, def float64, usage string) *Flag {
	s.fs.Float64Var(p, name, def, usage)
	return s.define(name)
}

// Bool defines a bool flag (the variable takes what strconv.ParseBool takes).
func (s *Set) Bool(p *bool, name string, def bool, usage string) *Flag {
	s.fs.BoolVar(p, name, def, usage)
	return s.define(name)
}

// Duration defines a time.Duration flag (such as 500ms or 2s).
func (s *Set) Duration(p *time.Duration, name string, def time.Duration, usage string) *Flag {
	s.fs.DurationVar(p, name, def, usage)
	return s.define(name)
}

// Addrs defines a comma-separated list of host:port addresses; blanks around commas are trimmed.
// Parse refuses an empty list.
func (s *Set) Addrs(p *[]string, name, def, usage string) *Flag {
	*p = splitList(def)
	s.fs.Var((*addrsValue)(p), name, usage)
	s.After(func() error {
		if len(*p) == 0 {
			return fmt.Errorf("%s is empty: want host:port[,host:port...]", s.Label(name))
		}
		return nil
	})
	return s.define(name)
}

// Alias defines old as a hidden, deprecated spelling of the flag name (defined before): it sets
// the same value and is left out of -h.
func (s *Set) Alias(old, name string) {
	f := s.fs.Lookup(name)
	if f == nil {
		panic("flagenv: alias " + old + " of undefined flag " + name)
	}
	s.fs.Var(f.Value, old, "deprecated spelling of -"+name)
	s.hidden[old] = true
}

// Secret reads the variable env into p at Parse: secrets have no flag, since a command line shows
// in ps. -h lists them under "environment only".
func (s *Set) Secret(p *string, env, usage string) {
	s.secrets = append(s.secrets, secret{dst: p, env: env, usage: usage})
}

// After registers a check or derivation that Parse runs once every value is known (in the order
// registered); its error is Parse's.
func (s *Set) After(f func() error) { s.after = append(s.after, f) }

// Parse applies the environment, then args, then the After functions. It returns flag.ErrHelp
// after printing the flags for -h or -help (a binary then exits 0), and an error naming the
// variable or flag at fault otherwise. Arguments that are not flags are refused.
func (s *Set) Parse(args []string) error {
	if s.parsed {
		return errors.New("flagenv: Parse called twice")
	}
	s.parsed = true
	for _, f := range s.flags {
		fl := s.fs.Lookup(f.name)
		fl.Usage += " (env " + f.env + ")"
		v := s.getenv(f.env)
		if v == "" {
			continue
		}
		if err := fl.Value.Set(v); err != nil {
			return fmt.Errorf("%s=%q (-%s): %v", f.env, v, f.name, err)
		}
	}
	for _, sec := range s.secrets {
		*sec.dst = s.getenv(sec.env)
	}
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	if s.fs.NArg() > 0 && !s.argsOK {
		return fmt.Errorf("unexpected arguments %q: %s takes flags only (see -h)", s.fs.Args(), s.fs.Name())
	}
	for _, f := range s.after {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// usage prints the visible flags as flag.PrintDefaults does, then the environment-only secrets.
func (s *Set) usage() {
	if s.synopsis != "" {
		fmt.Fprintln(s.out, s.synopsis)
	}
	fmt.Fprintf(s.out, "Usage of %s (each flag can also be set by the variable in parentheses; the flag wins):\n", s.fs.Name())
	shown := flag.NewFlagSet(s.fs.Name(), flag.ContinueOnError)
	shown.SetOutput(s.out)
	s.fs.VisitAll(func(f *flag.Flag) {
		if s.hidden[f.Name] {
			return
		}
		shown.Var(f.Value, f.Name, f.Usage)
		shown.Lookup(f.Name).DefValue = f.DefValue
	})
	shown.PrintDefaults()
	if len(s.secrets) > 0 {
		fmt.Fprintln(s.out, "Environment only:")
		for _, sec := range s.secrets {
			fmt.Fprintf(s.out, "  %s\n    \t%s\n", sec.env, sec.usage)
		}
	}
}

// Visible lists the flags -h shows with the variable of each ("" for a flag without one), for
// tests that compare binaries.
func (s *Set) Visible() map[string]string {
	out := map[string]string{}
	s.fs.VisitAll(func(f *flag.Flag) {
		if !s.hidden[f.Name] {
			out[f.Name] = ""
		}
	})
	for _, f := range s.flags {
		out[f.name] = f.env
	}
	return out
}

// splitList splits a comma-separated list, trimming blanks and dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

type addrsValue []string

func (a *addrsValue) String() string {
	if a == nil {
		return ""
	}
	return strings.Join(*a, ",")
}

func (a *addrsValue) Set(v string) error {
	*a = splitList(v)
	return nil
}
