package flashsale

import (
	"context"
	"fmt"

	"flashedge/shared/challenge"
	"flashedge/shared/httpapi"
	"flashedge/shared/product"
)

// Challenge is a one-time proof of work bound to one user and one sale (package shared/challenge:
// its id is self-authenticating and is the prefix of the work, so nothing is stored until an
// attempt spends it).
type Challenge = challenge.Challenge

// IssueChallenge mints a challenge for user and sale valid for ChallengeTTL, with the sale's
// difficulty. It reads the sale (usually from memory) and writes nothing: the edge mints
// challenges itself with the same keys; this is the order service's own route to the same thing.
// Unknown sales are ErrNotFound, ended ones ErrEnded.
func (s *Service) IssueChallenge(ctx context.Context, user, saleID string) (Challenge, error) {
	if !product.ValidID([]byte(saleID)) {
		return Challenge{}, ErrNotFound
	}
	if !httpapi.ValidUserID([]byte(user)) {
		return Challenge{}, invalid("user id is not acceptable")
	}
	sl, err := s.loadSale(ctx, saleID)
	if err != nil {
		return Challenge{}, err
	}
	now := s.now()
	if !now.Before(sl.EndsAt) {
		return Challenge{}, ErrEnded
	}
	ch, err := s.o.Challenges.Issue(saleID, user, sl.Difficulty, now.Add(s.o.ChallengeTTL))
	if err != nil {
		return Challenge{}, fmt.Errorf("flashsale: %w", err)
	}
	return ch, nil
}
