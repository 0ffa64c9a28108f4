package web

// LoginView is the sign-in page.
type LoginView struct {
	Message string
	Name    string
	Next    string
	// Warning says why signing in cannot work from here (a cookie that the
	// browser would not send back, e.g. Secure over plain HTTP).
	Warning string
}
