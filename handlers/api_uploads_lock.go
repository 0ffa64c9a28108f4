package handlers

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	tus "github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
)

// uploadLocker is the lock tusd takes around every request on an upload
// (and the sweeper before it removes one). tusd's memorylocker works within
// one process: a new request there asks a stale holder to let go. Servers
// that share uploads in a bucket also share a PostgreSQL store, so there the
// lock is in addition a PostgreSQL advisory lock on the upload's id, which
// PostgreSQL releases when the holding server's connection ends (a crashed
// server holds nothing). A holder on another server is not asked to let go:
// the waiter gets tusd's lock timeout (AcquireLockTimeout), and the client
// retries, as tus clients do.
type uploadLocker struct {
	mem  *memorylocker.MemoryLocker
	pool *pgxpool.Pool // nil: this process only
}

// uploadLockPoll is how often a waiter asks PostgreSQL for a lock another
// server holds: a try-lock that cannot leave a stray waiter in the server
// the way a cancelled blocking pg_advisory_lock can.
const uploadLockPoll = 50 * time.Millisecond

// newUploadLocker locks in this process only when url is empty, and also in
// the PostgreSQL database at url otherwise. conns bounds the connections
// held for locks (each held lock keeps one).
func newUploadLocker(url string, conns int) (*uploadLocker, error) {
	l := &uploadLocker{mem: memorylocker.New()}
	if url == "" {
		return l, nil
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("upload locks: %w", err)
	}
	cfg.MaxConns = int32(conns)
	if l.pool, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
		return nil, fmt.Errorf("upload locks: %w", err)
	}
	return l, nil
}

func (l *uploadLocker) UseIn(c *tus.StoreComposer) { c.UseLocker(l) }

// Close ends the lock connections (releasing any lock still held).
func (l *uploadLocker) Close() {
	if l.pool != nil {
		l.pool.Close()
	}
}

func (l *uploadLocker) NewLock(id string) (tus.Lock, error) {
	m, err := l.mem.NewLock(id)
	if err != nil || l.pool == nil {
		return m, err
	}
	h := fnv.New64a()
	h.Write([]byte("deltascope upload " + id))
	return &sharedUploadLock{mem: m, pool: l.pool, key: int64(h.Sum64())}, nil
}

type sharedUploadLock struct {
	mem  tus.Lock
	pool *pgxpool.Pool
	key  int64
	conn *pgxpool.Conn // holds the advisory lock while locked
}

func (k *sharedUploadLock) Lock(ctx context.Context, requestRelease func()) error {
	// This process first: a stale request here is asked to let go at once.
	if err := k.mem.Lock(ctx, requestRelease); err != nil {
		return err
	}
	conn, err := k.pool.Acquire(ctx)
	for err == nil {
		var got bool
		if err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, k.key).Scan(&got); err != nil {
			break
		}
		if got {
			k.conn = conn
			return nil
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(uploadLockPoll):
		}
	}
	if conn != nil {
		conn.Release()
	}
	k.mem.Unlock()
	if ctx.Err() != nil {
		return tus.ErrLockTimeout
	}
	return fmt.Errorf("upload lock: %w", err)
}

func (k *sharedUploadLock) Unlock() error {
	if k.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var released bool
		if err := k.conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, k.key).Scan(&released); err != nil || !released {
			// Closing the session releases whatever it holds.
			k.conn.Conn().Close(ctx)
		}
		cancel()
		k.conn.Release()
		k.conn = nil
	}
	return k.mem.Unlock()
}
