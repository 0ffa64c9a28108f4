package synth

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"

	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
	"github.com/deltascope/deltascope/analysis/tensor"
	"github.com/deltascope/deltascope/internal/mkdirs"
)

// Generate writes the preset's base and VLA files under o.Out, their index and
// config files, and Out/pair.json, and returns the SRC specs of both sides.
// Values are a pure function of (Preset, Scale, Seed): the bytes do not depend
// on GOMAXPROCS or on timing.
//
// A new Out is written under a temporary name beside it and renamed, so it
// appears whole or not at all; into an Out that exists, the files are written
// in place and those this call created are removed if it fails. Cancelling
// ctx stops it within one block of rows, with the same cleanup.
func Generate(ctx context.Context, o Options) (*Pair, error) {
	if o.Out == "" {
		return nil, errors.New("no output folder given")
	}
	m, err := buildModel(o.Preset, o.Scale)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(o.Out); errors.Is(err, fs.ErrNotExist) {
		return writeNewFolder(ctx, o.Out, func(tmp string) (*Pair, error) {
			into := o
			into.Out = tmp
			return generateInto(ctx, m, into, &created{})
		})
	}
	made := &created{}
	pair, err := generateInto(ctx, m, o, made)
	if err != nil {
		made.remove()
		return nil, interrupted(ctx, o.Out, err)
	}
	return pair, nil
}

// writeNewFolder writes a folder that does not exist yet, out, under a
// temporary name beside it and renames it when write succeeds, so that out
// appears whole or not at all; on failure or cancel the temporary folder goes,
// and so do the folders above it that this call made.
func writeNewFolder[T any](ctx context.Context, out string, write func(tmp string) (T, error)) (T, error) {
	var zero T
	parent := filepath.Dir(out)
	made, err := mkdirs.All(parent)
	if err != nil {
		return zero, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		made.Remove()
		return zero, err
	}
	v, err := write(tmp)
	if err == nil {
		err = os.Rename(tmp, out)
	}
	if err != nil {
		os.RemoveAll(tmp)
		made.Remove()
		return zero, interrupted(ctx, out, err)
	}
	return v, nil
}

// interrupted names the folder and the cause when ctx stopped Generate,
// rather than the temporary file it was writing; other errors pass as they are.
func interrupted(ctx context.Context, out string, err error) error {
	if ctx.Err() == nil {
		return err
	}
	return &interruptedError{out: out, cause: context.Cause(ctx), err: ctx.Err()}
}

// interruptedError unwraps to the context's error and its cause.
type interruptedError struct {
	out        string
	cause, err error
}

func (e *interruptedError) Error() string {
	return fmt.Sprintf("%s: interrupted (%v); what was written is removed", e.out, e.cause)
}

func (e *interruptedError) Unwrap() []error { return []error{e.err, e.cause} }

// created records the files and folders a Generate into an existing folder
// made, in order, so that a failure can take exactly them away again.
type created struct{ paths []string }

// mkdirAll is os.MkdirAll that records each folder it creates, outermost
// first, so that remove takes them away after what was written into them.
func (c *created) mkdirAll(dir string) error {
	made, err := mkdirs.All(dir)
	if err != nil {
		return err
	}
	for i := len(made) - 1; i >= 0; i-- {
		c.paths = append(c.paths, made[i])
	}
	return nil
}

// create creates (or truncates) a file and records it.
func (c *created) create(path string) (*os.File, error) {
	if err := c.mkdirAll(filepath.Dir(path)); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err == nil {
		c.paths = append(c.paths, path)
	}
	return f, err
}

// remove deletes what was recorded, files before the folders holding them.
func (c *created) remove() {
	for i := len(c.paths) - 1; i >= 0; i-- {
		os.Remove(c.paths[i])
	}
}

// generateInto writes the model's files under o.Out.
func generateInto(ctx context.Context, m *model, o Options, made *created) (*Pair, error) {
	for _, side := range []struct {
		files []fileSpec
		vla   bool
	}{{m.baseFiles, false}, {m.vlaFiles, true}} {
		for i := range side.files {
			if err := writeFile(ctx, o, &side.files[i], side.vla, made); err != nil {
				return nil, err
			}
		}
	}
	extras := make([]string, 0, len(m.extra))
	for p := range m.extra {
		extras = append(extras, p)
	}
	slices.Sort(extras)
	for _, p := range extras {
		if err := writeSmall(made, filepath.Join(o.Out, filepath.FromSlash(p)), m.extra[p]); err != nil {
			return nil, err
		}
	}
	pair := &Pair{Base: m.baseSpecs, VLA: m.vlaSpecs}
	data, err := json.MarshalIndent(pair, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeSmall(made, filepath.Join(o.Out, "pair.json"), append(data, '\n')); err != nil {
		return nil, err
	}
	return pair, nil
}

func writeSmall(made *created, path string, data []byte) error {
	f, err := made.create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// checkDTypes guards fill, which encodes only BF16 and F32.
func checkDTypes(f *fileSpec, vla bool) error {
	for _, s := range f.specs {
		dt := s.baseDType
		if vla {
			dt = s.vlaDType
		}
		if dt != tensor.BF16 && dt != tensor.F32 {
			return fmt.Errorf("tensor %q: generator writes BF16 or F32, not %v", s.key, dt)
		}
	}
	return nil
}

// writeFile writes one safetensors file: the header, then either every tensor's
// values or, with ShapeOnly, a sparse hole of the right size.
func writeFile(ctx context.Context, o Options, fs *fileSpec, vla bool, made *created) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	path := filepath.Join(o.Out, filepath.FromSlash(fs.path))
	f, err := made.create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = tensor.Errorf(path, "closing: %v", cerr)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := safetensors.NewWriter(bw, fs.writeTensors(vla), map[string]string{"format": "pt"})
	if err != nil {
		return tensor.Errorf(path, "%v", err)
	}
	if o.ShapeOnly {
		if err := bw.Flush(); err != nil {
			return tensor.Errorf(path, "writing header: %v", err)
		}
		// Extending the file leaves the data as a hole: zeros that take no disk.
		if err := f.Truncate(w.HeaderSize() + w.DataSize()); err != nil {
			return tensor.Errorf(path, "sizing: %v", err)
		}
		return nil
	}
	gens := make([]*tensorGen, len(fs.specs))
	for i, s := range fs.specs {
		gens[i] = newTensorGen(o.Seed, s, vla)
	}
	if err := writeBlocks(ctx, w, gens); err != nil {
		return tensor.Errorf(path, "%v", err)
	}
	if err := w.Close(); err != nil {
		return tensor.Errorf(path, "%v", err)
	}
	if err := bw.Flush(); err != nil {
		return tensor.Errorf(path, "writing: %v", err)
	}
	return nil
}

type blockJob struct {
	g *tensorGen
	b int64
}

// writeBlocks fills every row block of every tensor in parallel and writes them
// in file order. At most `window` blocks are in flight, so memory stays at a few
// MB whatever the model size.
func writeBlocks(ctx context.Context, w *safetensors.Writer, gens []*tensorGen) error {
	var jobs []blockJob
	for _, g := range gens {
		for b := range g.blocks() {
			jobs = append(jobs, blockJob{g, b})
		}
	}
	workers := runtime.GOMAXPROCS(0)
	window := 4 * workers
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Job i reports on ring[i % window]: job i+window is dispatched only after the
	// writer has taken job i's result and freed its slot, so a ring entry never
	// holds two results.
	ring := make([]chan *[]byte, window)
	for i := range ring {
		ring[i] = make(chan *[]byte, 1)
	}
	slots := make(chan struct{}, window)
	next := make(chan int)
	var pool sync.Pool
	var wg sync.WaitGroup

	wg.Go(func() { // dispatcher: hands out jobs in order, never more than window ahead of the writer
		defer close(next)
		for i := range jobs {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	})
	for range workers {
		wg.Go(func() {
			var scratch []float32
			for i := range next {
				j := jobs[i]
				n := int(j.g.blockBytes(j.b))
				buf, _ := pool.Get().(*[]byte)
				if buf == nil || cap(*buf) < n {
					b := make([]byte, n)
					buf = &b
				}
				*buf = (*buf)[:n]
				if ctx.Err() == nil {
					j.g.fill(*buf, j.b, &scratch)
				}
				ring[i%window] <- buf
			}
		})
	}

	var err error
	for i := range jobs {
		var buf *[]byte
		select {
		case buf = <-ring[i%window]:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			break
		}
		if _, err = w.Write(*buf); err != nil {
			break
		}
		pool.Put(buf)
		<-slots
	}
	cancel()
	wg.Wait()
	return err
}
