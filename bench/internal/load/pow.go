package load

import "flashedge/shared/challenge"

// SolvePoW answers a pow-sha256 challenge the honest way (challenge.SolveCount): it counts up
// from zero until SHA-256(prefix + decimal nonce) starts with difficulty zero bits, about
// 2^difficulty hashes. It returns the nonce and how many hashes it took. Difficulty 0 accepts
// "0" at once.
func SolvePoW(prefix string, difficulty int) (nonce string, hashes int) {
	return challenge.SolveCount(prefix, difficulty)
}
