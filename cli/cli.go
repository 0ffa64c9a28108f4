// Package cli is deltascope's command line: the same engine the server uses,
// for scripts and CI. Every command exits 0 on success; on failure it prints one
// line, `deltascope: PATH: what is wrong`, on stderr and exits non-zero.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/deltascope/deltascope/analysis/prune"
)

// Env is what a command may touch: its streams, and whether stderr is a terminal
// (for progress bars).
type Env struct {
	Stdout, Stderr io.Writer
	StderrIsTTY    bool
	// Stdin feeds `user add --password-stdin`; nil means os.Stdin.
	Stdin io.Reader
	// PasswordCost is the bcrypt cost of the passwords `user` sets; 0 means
	// store.DefaultPasswordCost. Tests lower it to make hashing fast.
	PasswordCost int
}

type command struct {
	name, args, summary string
	run                 func(ctx context.Context, env Env, args []string) error
}

func commands() []command {
	return []command{
		{"inspect", "SRC... [--json]", "list the tensors of checkpoints: name, dtype, shape, bytes, file", runInspect},
		{"analyze", "--base SRC... --vla SRC... [--map 'REGEX=>REPLACEMENT'...] [--json FILE] [--rows] [--units] [--data DIR]", "compute ΔW = W_VLA − W_base per tensor, row, column, channel and head", runAnalyze},
		{"mask", "--base SRC... --vla SRC... (--recipe FILE | --preset NAME) --export " + strings.Join(prune.ExportKindNames(true), "|") + " --out PATH", "resolve a pruning recipe to masks and export them", runMask},
		{"serve", "[--addr 127.0.0.1:8080] [--data DIR] [--root DIR...] [--auth none|accounts [--secure-cookies]]", "run the dashboard and the JSON API", runServe},
		{"gen", "--preset NAME --scale F --out DIR [--shape-only]", "write a synthetic base/VLA pair with the names and shapes of a real model", runGen},
		{"worker", "--db postgres://USER@HOST:PORT/DB [--root DIR...] [--workers N] [--threads N]", "compute analyses from a shared PostgreSQL store's queue, serving no pages", runWorker},
		{"user", "add|list|token|passwd|role|delete NAME ... (see deltascope user)", "manage the accounts of serve --auth accounts: passwords, roles and personal API tokens", runUser},
	}
}

// exitInterrupted is the exit status of a command stopped by SIGINT or SIGTERM.
const exitInterrupted = 130

// Main runs the command line and returns the process exit code.
func Main(args []string, env Env) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal cancels the command, a second one takes Go's
	// default action and ends the process at once, as a user pressing Ctrl-C
	// twice expects.
	context.AfterFunc(ctx, stop)
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(env.Stdout, usage())
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, env, args[1:])
			var help *helpRequest
			if errors.As(err, &help) {
				fmt.Fprintf(env.Stdout, "usage: deltascope %s %s\n    %s\n\nflags:\n%s", c.name, c.args, c.summary, help.flags)
				return 0
			}
			if err != nil && ctx.Err() != nil {
				// Interrupted: the command has removed what it was writing.
				// 130 is the shell's status for a command ended by SIGINT.
				msg := err.Error()
				if errors.Is(err, context.Canceled) && msg == context.Canceled.Error() {
					msg = fmt.Sprintf("interrupted (%v)", context.Cause(ctx))
				}
				fmt.Fprintf(env.Stderr, "deltascope: %s\n", oneLine(msg))
				return exitInterrupted
			}
			if err != nil {
				fmt.Fprintf(env.Stderr, "deltascope: %s\n", oneLine(err.Error()))
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(env.Stderr, "deltascope: unknown command %q (try deltascope help)\n", args[0])
	return 2
}

func usage() string {
	var b strings.Builder
	b.WriteString("deltascope: what did fine-tuning change in my model, and what can I cut?\n\nUsage:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  deltascope %s %s\n      %s\n", c.name, c.args, c.summary)
	}
	b.WriteString("\nSRC is [PREFIX=]PATH: a .safetensors file, a folder (sharded with model.safetensors.index.json,\nor plain *.safetensors files), or a torch zip pickle (.bin, .pt, .pth).\nPATH may also be s3://BUCKET/KEY (a file, or a prefix holding a folder; AWS_ACCESS_KEY_ID,\nAWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL) or hf://ORG/REPO[@REVISION]/PATH (HF_TOKEN, HF_ENDPOINT).\n")
	return b.String()
}

// oneLine keeps the error contract of one line on stderr even when a message
// carries a newline from a file name or a wrapped error.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}
