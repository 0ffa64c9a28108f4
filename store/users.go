package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Role is what a user may do. Each role includes the ones below it.
type Role string

const (
	RoleViewer Role = "viewer" // read, comment
	RoleEditor Role = "editor" // upload, analyse, save recipes, change review status
	RoleAdmin  Role = "admin"  // manage users
)

// rank orders roles; 0 is no role at all.
func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleEditor:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// AtLeast reports whether r includes min. An unknown role includes nothing.
func (r Role) AtLeast(min Role) bool { return r.rank() > 0 && r.rank() >= min.rank() }

// ParseRole accepts viewer, editor or admin.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if r.rank() == 0 {
		return "", errorf(EINVALID, "role %q: must be viewer, editor or admin", s)
	}
	return r, nil
}

// User is an account. The password hash never leaves the store.
type User struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Role        Role      `json:"role"`
	HasPassword bool      `json:"has_password"`
	CreatedAt   time.Time `json:"created_at"`
}

// Password rules. bcrypt reads at most 72 bytes; refusing longer passwords is
// better than silently ignoring their tail.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 72
	maxUserNameLen = 64
)

// DefaultPasswordCost is the bcrypt cost of new password hashes of a DB whose
// cost was not set (SetPasswordCost).
const DefaultPasswordCost = 12

// passwordCost is a DB's bcrypt cost, and the dummy hash compared against for
// an unknown name, made at that cost so that both take the same time.
type passwordCost struct {
	mu    sync.Mutex
	cost  int // 0: DefaultPasswordCost
	dummy []byte
}

// SetPasswordCost sets the bcrypt cost of the hashes this DB makes from now on
// (existing hashes keep theirs). Tests lower it to bcrypt.MinCost so that
// creating users is fast, without touching any other DB.
func (db *DB) SetPasswordCost(cost int) error {
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return errorf(EINVALID, "password cost %d: bcrypt takes %d to %d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	db.pw.mu.Lock()
	defer db.pw.mu.Unlock()
	db.pw.cost, db.pw.dummy = cost, nil
	return nil
}

// PasswordCost is the bcrypt cost of the hashes this DB makes.
func (db *DB) PasswordCost() int {
	db.pw.mu.Lock()
	defer db.pw.mu.Unlock()
	return db.pw.costOrDefault()
}

func (p *passwordCost) costOrDefault() int {
	if p.cost == 0 {
		return DefaultPasswordCost
	}
	return p.cost
}

// ErrBadCredentials is CheckPassword's answer for an unknown name and for a
// wrong password alike, so a caller cannot tell which.
var ErrBadCredentials = errors.New("store: wrong user name or password")

// ValidateUserName accepts 1 to 64 letters, digits and . _ @ -.
func ValidateUserName(name string) error {
	if name == "" || len(name) > maxUserNameLen {
		return errorf(EINVALID, "user name must be 1 to %d characters", maxUserNameLen)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._@-", c)
		if !ok {
			return errorf(EINVALID, "user name %q: only letters, digits and . _ @ - are allowed", name)
		}
	}
	return nil
}

// ValidatePassword checks the length rules.
func ValidatePassword(pw string) error {
	if len(pw) < MinPasswordLen || len(pw) > MaxPasswordLen {
		return errorf(EINVALID, "password must be %d to %d bytes long", MinPasswordLen, MaxPasswordLen)
	}
	return nil
}

// HashPassword returns the bcrypt hash of pw at cost after checking its length.
func HashPassword(pw string, cost int) (string, error) {
	if err := ValidatePassword(pw); err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", fmt.Errorf("store: hash password: %w", err)
	}
	return string(h), nil
}

// GeneratePassword returns a random password of 20 URL-safe characters (120
// bits), for accounts created without one.
func GeneratePassword() string {
	var b [15]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// CreateUser adds an account. An empty password makes an account that can only
// use API tokens until a password is set.
func (db *DB) CreateUser(ctx context.Context, name string, role Role, password string) (*User, error) {
	if err := ValidateUserName(name); err != nil {
		return nil, err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return nil, err
	}
	hash := ""
	if password != "" {
		var err error
		if hash, err = HashPassword(password, db.PasswordCost()); err != nil {
			return nil, err
		}
	}
	u := &User{Name: name, Role: role, HasPassword: hash != ""}
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var existing string
		err := tx.QueryRowContext(ctx, `SELECT name FROM users WHERE name = ? COLLATE NOCASE LIMIT 1`, name).Scan(&existing)
		switch {
		case err == nil && existing == name:
			return errorf(ECONFLICT, "user %q already exists", name)
		case err == nil:
			return errorf(ECONFLICT, "user %q already exists as %q: names differ by more than case", name, existing)
		case err != sql.ErrNoRows:
			return err
		}
		now := db.now()
		u.CreatedAt = time.UnixMilli(now)
		// RETURNING, not LastInsertId: PostgreSQL's driver has no such thing.
		return tx.QueryRowContext(ctx, `INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id`,
			name, string(role), hash, now).Scan(&u.ID)
	})
	if err != nil {
		return nil, wrapStore("create user", err)
	}
	return u, nil
}

const userColumns = `id, name, role, password_hash <> '', created_at`

// userIDByName is the id of the one account a name means, taking the name
// twice as arguments. Names compare case-insensitively (names are ASCII, which
// NOCASE folds), so ADMIN cannot pose beside admin and "Admin" logs in as
// admin; in a store from before this rule, where two accounts may differ only
// in case, the exact spelling wins, so no statement ever touches both.
const userIDByName = `(SELECT id FROM users WHERE name = ? COLLATE NOCASE ORDER BY name = ? DESC, id LIMIT 1)`

func scanUser(row interface{ Scan(...any) error }) (*User, error) {
	var u User
	var role string
	var created int64
	if err := row.Scan(&u.ID, &u.Name, &role, &u.HasPassword, &created); err != nil {
		return nil, err
	}
	u.Role = Role(role)
	u.CreatedAt = time.UnixMilli(created)
	return &u, nil
}

// GetUser returns the account called name, or ErrNotFound.
func (db *DB) GetUser(ctx context.Context, name string) (*User, error) {
	u, err := scanUser(db.reader.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = `+userIDByName, name, name))
	if err == sql.ErrNoRows {
		return nil, errorf(ENOTFOUND, "user %q not found", name)
	}
	if err != nil {
		return nil, fmt.Errorf("store: user %q: %w", name, err)
	}
	return u, nil
}

// ListUsers returns every account by name.
func (db *DB) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	defer rows.Close()
	users := []User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list users: %w", err)
		}
		users = append(users, *u)
	}
	return users, rows.Err()
}

// SetUserRole changes a role. Demoting the last admin is refused: nobody could
// manage users afterwards.
func (db *DB) SetUserRole(ctx context.Context, name string, role Role) (*User, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return nil, err
	}
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		old, err := userRoleTx(ctx, tx, name)
		if err != nil {
			return err
		}
		if old == RoleAdmin && role != RoleAdmin {
			if err := refuseLastAdmin(ctx, tx, name, "demote"); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE users SET role = ? WHERE id = `+userIDByName, string(role), name, name)
		return err
	})
	if err != nil {
		return nil, wrapStore("set role", err)
	}
	return db.GetUser(ctx, name)
}

// SetUserPassword replaces a password, ends the user's sessions and revokes
// their API tokens, so a password changed after a leak locks out whoever used
// the old one.
func (db *DB) SetUserPassword(ctx context.Context, name, password string) error {
	hash, err := HashPassword(password, db.PasswordCost())
	if err != nil {
		return err
	}
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = `+userIDByName, hash, name, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errorf(ENOTFOUND, "user %q not found", name)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = `+userIDByName, name, name)
		if err != nil {
			return err
		}
		// API tokens go too (issue 14): they would outlive the leak otherwise.
		_, err = tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND user_id = `+userIDByName, db.now(), name, name)
		return err
	})
	return wrapStore("set password", err)
}

// DeleteUser removes an account with its sessions and tokens (the foreign keys
// cascade); their comments and recipes stay, without an author. Deleting the
// last admin is refused.
func (db *DB) DeleteUser(ctx context.Context, name string) error {
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		role, err := userRoleTx(ctx, tx, name)
		if err != nil {
			return err
		}
		if role == RoleAdmin {
			if err := refuseLastAdmin(ctx, tx, name, "delete"); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM users WHERE id = `+userIDByName, name, name)
		return err
	})
	return wrapStore("delete user", err)
}

// CountUsers returns the number of accounts.
func (db *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count users: %w", err)
	}
	return n, nil
}

// CheckPassword returns the user when name and password match, and
// ErrBadCredentials otherwise. An unknown name costs a bcrypt comparison too,
// so response times do not reveal which names exist.
func (db *DB) CheckPassword(ctx context.Context, name, password string) (*User, error) {
	var hash string
	u, err := scanUserWithHash(db.reader.QueryRowContext(ctx,
		`SELECT `+userColumns+`, password_hash FROM users WHERE id = `+userIDByName, name, name), &hash)
	if err != nil && err != sql.ErrNoRows {
		return nil, fmt.Errorf("store: check password: %w", err)
	}
	if err == sql.ErrNoRows || hash == "" || len(password) > MaxPasswordLen {
		bcrypt.CompareHashAndPassword(db.dummyHash(), []byte(password))
		return nil, ErrBadCredentials
	}
	// bcrypt compares the hashes in constant time.
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return nil, ErrBadCredentials
	}
	return u, nil
}

func scanUserWithHash(row *sql.Row, hash *string) (*User, error) {
	var u User
	var role string
	var created int64
	if err := row.Scan(&u.ID, &u.Name, &role, &u.HasPassword, &created, hash); err != nil {
		return nil, err
	}
	u.Role = Role(role)
	u.CreatedAt = time.UnixMilli(created)
	return &u, nil
}

// dummyHash is a hash of a random password at the DB's cost, compared
// against when there is no real hash; made once per cost.
func (db *DB) dummyHash() []byte {
	db.pw.mu.Lock()
	defer db.pw.mu.Unlock()
	if db.pw.dummy == nil {
		db.pw.dummy, _ = bcrypt.GenerateFromPassword([]byte(GeneratePassword()), db.pw.costOrDefault())
	}
	return db.pw.dummy
}

func userRoleTx(ctx context.Context, tx *sql.Tx, name string) (Role, error) {
	var role string
	err := tx.QueryRowContext(ctx, `SELECT role FROM users WHERE id = `+userIDByName, name, name).Scan(&role)
	if err == sql.ErrNoRows {
		return "", errorf(ENOTFOUND, "user %q not found", name)
	}
	return Role(role), err
}

func refuseLastAdmin(ctx context.Context, tx *sql.Tx, name, verb string) error {
	var others int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE role = 'admin' AND id <> `+userIDByName, name, name).Scan(&others); err != nil {
		return err
	}
	if others == 0 {
		return errorf(ECONFLICT, "cannot %s %q: it is the last admin", verb, name)
	}
	return nil
}

// wrapStore keeps coded errors as they are (their message is for users) and
// prefixes anything else.
func wrapStore(what string, err error) error {
	if err == nil || ErrorCode(err) != "" {
		return err
	}
	return fmt.Errorf("store: %s: %w", what, err)
}
