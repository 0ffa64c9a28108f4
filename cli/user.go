package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/deltascope/deltascope/store"
)

// userUsage lists the user subcommands. Passwords never travel as arguments
// (they would show in `ps` and shell history): they come from stdin, a file,
// or are generated and printed once.
const userUsage = `user add NAME --role viewer|editor|admin [--password-stdin | --password-file FILE] [--data DIR]
user list [--data DIR]
user token NAME [--label TEXT] [--expires 90d|never] [--data DIR]
user token NAME --list | --revoke ID | --all [--data DIR]
user passwd NAME [--password-stdin | --password-file FILE] [--data DIR]
    (a new password, generated and printed once if none is given; ends the user's sessions and revokes all their API tokens)
user role NAME --role viewer|editor|admin [--data DIR]
user delete NAME [--data DIR]
user unlock NAME [--data DIR]`

func runUser(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("user: say what to do:\n%s", userUsage)
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		return &helpRequest{flags: userUsage}
	}
	sub := map[string]func(context.Context, Env, []string) error{
		"add": runUserAdd, "list": runUserList, "token": runUserToken,
		"passwd": runUserPasswd, "role": runUserRole, "delete": runUserDelete, "unlock": runUserUnlock,
	}[args[0]]
	if sub == nil {
		return fmt.Errorf("user: unknown subcommand %q (add, list, token, passwd, role, delete, unlock)", args[0])
	}
	return sub(ctx, env, args[1:])
}

// userFlags are the flags every user subcommand shares.
type userFlags struct {
	fs *flagSet
	sf storeFlags
}

func newUserFlags(cmd string, positionals int) userFlags {
	fs := newFlagSet(cmd, positionals)
	return userFlags{fs: fs, sf: addStoreFlags(fs, "deltascope-data", "the server's data folder")}
}

// parse parses args and returns the one NAME positional when want is true.
func (u userFlags) parse(args []string, want bool) (string, error) {
	if err := u.fs.Parse(args); err != nil {
		return "", err
	}
	if !want {
		return "", nil
	}
	if len(u.fs.args) != 1 {
		return "", fmt.Errorf("%s: give the user NAME", u.fs.cmd)
	}
	return u.fs.args[0], nil
}

// open opens the database at the env's password cost.
func (u userFlags) open(ctx context.Context, env Env) (*store.DB, error) {
	db, err := u.sf.open(ctx)
	if err != nil || env.PasswordCost == 0 {
		return db, err
	}
	if err := db.SetPasswordCost(env.PasswordCost); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func runUserAdd(ctx context.Context, env Env, args []string) error {
	f := newUserFlags("user add", 1)
	role := f.fs.String("role", "", "viewer, editor or admin")
	pwStdin := f.fs.Bool("password-stdin", "read the password from the first line of stdin")
	pwFile := f.fs.String("password-file", "", "read the password from the first line of this file")
	name, err := f.parse(args, true)
	if err != nil {
		return err
	}
	if *role == "" {
		return fmt.Errorf("user add: --role is required (viewer, editor or admin)")
	}
	r, err := store.ParseRole(*role)
	if err != nil {
		return fmt.Errorf("user add: %v", err)
	}
	password, generated, err := readPassword(env, *pwStdin, *pwFile, true)
	if err != nil {
		return fmt.Errorf("user add: %v", err)
	}
	db, err := f.open(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	u, err := db.CreateUser(ctx, name, r, password)
	if err != nil {
		return fmt.Errorf("user add: %v", err)
	}
	fmt.Fprintf(env.Stdout, "created user %s (%s)\n", u.Name, u.Role)
	if generated {
		fmt.Fprintf(env.Stdout, "password: %s\n", password)
		fmt.Fprintf(env.Stderr, "deltascope: the password above is shown once; pass it on safely\n")
	}
	return nil
}

func runUserList(ctx context.Context, env Env, args []string) error {
	f := newUserFlags("user list", 0)
	if _, err := f.parse(args, false); err != nil {
		return err
	}
	db, err := f.open(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	users, err := db.ListUsers(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tPASSWORD\tCREATED")
	for _, u := range users {
		pw := "set"
		if !u.HasPassword {
			pw = "none (tokens only)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Role, pw, u.CreatedAt.UTC().Format(time.DateTime))
	}
	return tw.Flush()
}

func runUserToken(ctx context.Context, env Env, args []string) error {
	f := newUserFlags("user token", 1)
	label := f.fs.String("label", "", "what the token is for (shown in listings)")
	expires := f.fs.String("expires", "90d", "how long the token works (e.g. 30d, 12h), or never")
	list := f.fs.Bool("list", "list the user's tokens with their last use and expiry")
	revoke := f.fs.String("revoke", "", "revoke the token with this ID")
	all := f.fs.Bool("all", "revoke all the user's tokens")
	name, err := f.parse(args, true)
	if err != nil {
		return err
	}
	db, err := f.open(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	if *list || *revoke != "" || *all {
		return manageTokens(ctx, env, db, name, *list, *revoke, *all)
	}
	var ttl time.Duration
	if *expires != "never" {
		if ttl, err = parseDuration(*expires); err != nil || ttl <= 0 {
			return fmt.Errorf("user token: --expires %q: give a duration such as 90d or 12h, or never", *expires)
		}
	}
	secret, tok, err := db.CreateAPITokenTTL(ctx, name, *label, ttl)
	if err != nil {
		return fmt.Errorf("user token: %v", err)
	}
	// The token alone on stdout, so `TOKEN=$(deltascope user token ci)` works.
	fmt.Fprintln(env.Stdout, secret)
	fmt.Fprintf(env.Stderr, "deltascope: token %s for %s; shown once, send it as \"Authorization: Bearer <token>\"\n",
		strconv.FormatInt(tok.ID, 10), name)
	return nil
}

// passwdHelp says what `user passwd` does besides setting the password: a
// changed password is meant to lock out whoever knew the old one, so the
// user's sessions and API tokens go with it.
const passwdHelp = "user passwd NAME sets a new password (generated and printed once if none is given), ends the user's sessions and revokes all their API tokens"

func runUserPasswd(ctx context.Context, env Env, args []string) error {
	f := newUserFlags("user passwd", 1)
	pwStdin := f.fs.Bool("password-stdin", "read the password from the first line of stdin")
	pwFile := f.fs.String("password-file", "", "read the password from the first line of this file")
	name, err := f.parse(args, true)
	if h := (*helpRequest)(nil); errors.As(err, &h) {
		h.flags = passwdHelp + "\n\n" + h.flags
	}
	if err != nil {
		return err
	}
	password, generated, err := readPassword(env, *pwStdin, *pwFile, true)
	if err != nil {
		return fmt.Errorf("user passwd: %v", err)
	}
	db, err := f.open(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.SetUserPassword(ctx, name, password); err != nil {
		return fmt.Errorf("user passwd: %v", err)
	}
	fmt.Fprintf(env.Stdout, "password of %s changed; their sessions are ended and their API tokens revoked (user token %s makes a new one)\n", name, name)
	if generated {
		fmt.Fprintf(env.Stdout, "password: %s\n", password)
	}
	return nil
}

func runUserRole(ctx context.Context, env Env, args []string) error {
	f := newUserFlags("user role", 1)
	role := f.fs.String("role", "", "viewer, editor or admin")
	name, err := f.parse(args, true)
	if err != nil {
		return err
	}
	r, err := store.ParseRole(*role)
	if err != nil {
		return fmt.Errorf("user role: %v", err)
	}
	db, err := f.open(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	u, err := db.SetUserRole(ctx, name, r)
	if err != nil {
		return fmt.Errorf("user role: %v", err)
	}
	fmt.Fprintf(env.Stdout, "%s is now %s\n", u.Name, u.Role)
	return nil
}

func runUserDelete(ctx context.Context, env Env, args []string) error {
	return runUserAction(ctx, env, args, "user delete", func(db *store.DB, name string) (string, error) {
		return "deleted user " + name, db.DeleteUser(ctx, name)
	})
}

// runUserAction runs a `user` command that acts on one named account: read
// the flags, open the store, act, and print what was done.
func runUserAction(ctx context.Context, env Env, args []string, cmd string, act func(db *store.DB, name string) (string, error)) error {
	f := newUserFlags(cmd, 1)
	name, err := f.parse(args, true)
	if err != nil {
		return err
	}
	db, err := f.open(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	done, err := act(db, name)
	if err != nil {
		return fmt.Errorf("%s: %v", cmd, err)
	}
	fmt.Fprintln(env.Stdout, done)
	return nil
}

// maxPasswordInput bounds what is read looking for a password line.
const maxPasswordInput = 4 << 10

// readPassword takes the password from stdin or a file (first line, without
// its line ending), or, with neither and generate set, makes one up.
func readPassword(env Env, fromStdin bool, file string, generate bool) (pw string, generated bool, err error) {
	switch {
	case fromStdin && file != "":
		return "", false, errors.New("give --password-stdin or --password-file, not both")
	case fromStdin:
		in := env.Stdin
		if in == nil {
			in = os.Stdin
		}
		pw, err = firstLine(in)
		if err != nil {
			return "", false, fmt.Errorf("stdin: %v", err)
		}
	case file != "":
		fh, err := os.Open(file)
		if err != nil {
			return "", false, err
		}
		defer fh.Close()
		if pw, err = firstLine(fh); err != nil {
			return "", false, fmt.Errorf("%s: %v", file, err)
		}
	case generate:
		return store.GeneratePassword(), true, nil
	}
	if err := store.ValidatePassword(pw); err != nil {
		return "", false, err
	}
	return pw, false, nil
}

func firstLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxPasswordInput)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password (the first line is empty)")
	}
	return line, nil
}
