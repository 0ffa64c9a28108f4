package handlers

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/store"
)

func TestUsersAPI(t *testing.T) {
	f := newAuthFixture(t, Config{Auth: AuthAccounts})
	admin := store.RoleAdmin

	// Created without a password: one is generated and shown once.
	rec := f.do("POST", "/api/users", `{"name":"grace","role":"editor"}`, admin)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	var created struct {
		Name, Role, Password string
	}
	json.Unmarshal(rec.Body.Bytes(), &created)
	if created.Name != "grace" || created.Role != "editor" || len(created.Password) < 16 {
		t.Fatalf("created %s", rec.Body)
	}
	if rec := f.serve(loginRequest("grace", created.Password, "/", "")); rec.Code != http.StatusSeeOther {
		t.Fatalf("login with the generated password: %d", rec.Code)
	}
	if rec := f.do("GET", "/api/users", "", admin); strings.Contains(rec.Body.String(), "password") && !strings.Contains(rec.Body.String(), "has_password") {
		t.Fatalf("the user list leaks passwords: %s", rec.Body)
	} else if strings.Contains(rec.Body.String(), "$2") {
		t.Fatalf("the user list leaks hashes: %s", rec.Body)
	}

	steps := []struct {
		name, method, target, body string
		want                       int
		contains                   string
	}{
		{"duplicate name", "POST", "/api/users", `{"name":"grace","role":"viewer","password":"long enough pw"}`, 409, "already exists"},
		{"bad role", "POST", "/api/users", `{"name":"h","role":"owner","password":"long enough pw"}`, 400, "viewer, editor or admin"},
		{"short password", "POST", "/api/users", `{"name":"h","role":"viewer","password":"short"}`, 400, "password must be"},
		{"bad name", "POST", "/api/users", `{"name":"a b","role":"viewer"}`, 400, "user name"},
		{"unknown field", "POST", "/api/users", `{"name":"h","role":"viewer","admin":true}`, 400, "unknown field"},
		{"not JSON", "POST", "/api/users", `name=h`, 400, "malformed JSON"},
		{"promote", "PATCH", "/api/users/grace", `{"role":"admin"}`, 200, `"role":"admin"`},
		{"nothing to change", "PATCH", "/api/users/grace", `{}`, 400, "nothing to change"},
		{"unknown user", "PATCH", "/api/users/nobody", `{"role":"viewer"}`, 404, ""},
		{"get one", "GET", "/api/users/grace", "", 200, `"name":"grace"`},
		{"delete", "DELETE", "/api/users/grace", "", 204, ""},
		{"deleted", "GET", "/api/users/grace", "", 404, ""},
		{"demote the last admin", "PATCH", "/api/users/root", `{"role":"viewer"}`, 409, "last admin"},
		{"delete the last admin", "DELETE", "/api/users/root", "", 409, "last admin"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			rec := f.do(st.method, st.target, st.body, admin)
			if rec.Code != st.want || !strings.Contains(rec.Body.String(), st.contains) {
				t.Fatalf("%d %s, want %d containing %q", rec.Code, rec.Body, st.want, st.contains)
			}
		})
	}

	// A password set by an admin ends the user's sessions.
	rec = f.do("PATCH", "/api/users/vi", `{"password":"brand new password"}`, admin)
	if rec.Code != 200 {
		t.Fatalf("set password: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do("GET", "/api/analyses", "", store.RoleViewer); rec.Code != http.StatusUnauthorized {
		t.Fatalf("old session after a password change: %d, want 401", rec.Code)
	}
	if rec := f.serve(loginRequest("vi", "brand new password", "/", "")); rec.Code != http.StatusSeeOther {
		t.Fatalf("login with the new password: %d", rec.Code)
	}
}

func TestMe(t *testing.T) {
	f := newAuthFixture(t, Config{Auth: AuthAccounts})
	rec := f.do("GET", "/api/me", "", store.RoleEditor)
	var me meResponse
	json.Unmarshal(rec.Body.Bytes(), &me)
	if me != (meResponse{Auth: AuthAccounts, Name: "ed", Role: store.RoleEditor, Via: "session"}) {
		t.Fatalf("/api/me = %+v", me)
	}
}
