//! What `tokengate check` says about a route table beyond matching:
//! routes an earlier one makes unreachable, and protected routes whose
//! requests a later public route catches when they miss by case or method.

use super::pattern::{has_letter, Segment};
use super::{RouteKey, RouteTable};

/// A protected route whose requests a later public route catches when they
/// miss it by case or by method (see [`RouteTable::fall_through`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallThrough {
    /// The later route without required auth.
    pub public: usize,
    /// The earlier route with required auth.
    pub protected: usize,
    /// A case variant of the protected path misses it and reaches `public`.
    pub by_case: bool,
    /// A method the protected route does not list reaches `public`.
    pub by_method: bool,
}

impl RouteTable {
    /// `(shadowed, by)` pairs: route `shadowed` can never match because the
    /// earlier route `by` matches every request it would.
    pub fn shadowed(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (j, later) in self.keys.iter().enumerate() {
            let by = self.keys[..j].iter().position(|earlier| {
                (earlier.host.is_none() || earlier.host == later.host)
                    && earlier.pattern.covers_case(
                        earlier.case_sensitive,
                        &later.pattern,
                        later.case_sensitive,
                    )
                    && match (&earlier.methods, &later.methods) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(e), Some(l)) => l.iter().all(|m| e.contains(m)),
                    }
            });
            if let Some(i) = by {
                out.push((j, i));
            }
        }
        out
    }

    /// The "fall-through to public" lint. `protected[i]` says whether route
    /// `i` requires a token. Reports each later unprotected route whose
    /// pattern covers an earlier protected route's pattern (for the same or
    /// every host) and so catches the requests that miss the protected one:
    /// a case variant of its path when it is case-sensitive (`/Api/admin`
    /// against `/api/admin/**`, harmful when the upstream folds case), or a
    /// method it does not list.
    pub fn fall_through(&self, protected: &[bool]) -> Vec<FallThrough> {
        let is_protected = |i: usize| protected.get(i).copied().unwrap_or(false);
        let mut out = Vec::new();
        for (j, public) in self.keys.iter().enumerate() {
            if is_protected(j) {
                continue;
            }
            for (i, guarded) in self.keys[..j].iter().enumerate() {
                if !is_protected(i)
                    || !(public.host.is_none() || public.host == guarded.host)
                    // The protected paths as written: those that miss it
                    // by method; case variants are looked at below.
                    || !public
                        .pattern
                        .covers_case(public.case_sensitive, &guarded.pattern, true)
                {
                    continue;
                }
                let by_case = guarded.case_sensitive && catches_case_variant(public, guarded);
                let by_method = match (&guarded.methods, &public.methods) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(g), Some(p)) => p.iter().any(|m| !g.contains(m)),
                };
                if by_case || by_method {
                    out.push(FallThrough {
                        public: j,
                        protected: i,
                        by_case,
                        by_method,
                    });
                }
            }
        }
        out
    }
}

/// Whether `public`, which covers the case-sensitive `guarded`, also matches
/// some case variant of a path `guarded` matches: some literal of `guarded`
/// with a letter sits where `public` is case-insensitive, has `*`, or has
/// already ended in `/**`.
fn catches_case_variant(public: &RouteKey, guarded: &RouteKey) -> bool {
    guarded
        .pattern
        .segments
        .iter()
        .enumerate()
        .any(|(k, seg)| match seg {
            Segment::Literal(l) if has_letter(l) => {
                !public.case_sensitive
                    || !matches!(public.pattern.segments.get(k), Some(Segment::Literal(_)))
            }
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::super::test_keys::{folded, key};
    use super::*;

    #[test]
    fn shadowed_reports_unreachable_routes() {
        let table = RouteTable::new(vec![
            key("/orders/**", None, None),
            key("/orders/*", Some(&["GET"]), None),
            key("/other", Some(&["GET"]), None),
            key("/other", Some(&["GET", "POST"]), None),
        ]);
        assert_eq!(table.shadowed(), vec![(1, 0)]);
    }

    #[test]
    fn shadowed_respects_case_sensitivity() {
        let table = RouteTable::new(vec![
            folded("/a/**", None),
            key("/A/b", None, None),
            key("/x/**", None, None),
            folded("/x/y", None),
            key("/*/**", None, None),
            folded("/Q/1", None),
        ]);
        // /X/y reaches routes[3] and not routes[2]; /q/1 has no letter left
        // for routes[4] to miss.
        assert_eq!(table.shadowed(), vec![(1, 0), (5, 4)]);
    }

    #[test]
    fn fall_through_table() {
        // (routes as (pattern, methods, case_sensitive, protected), expected
        // (public, protected, by_case, by_method)).
        type Route = (&'static str, Option<&'static [&'static str]>, bool, bool);
        type Found = (usize, usize, bool, bool);
        let cases: Vec<(Vec<Route>, Vec<Found>)> = vec![
            // The defect: a public catch-all after a case-sensitive prefix.
            (
                vec![
                    ("/api/admin/**", None, true, true),
                    ("/**", None, true, false),
                ],
                vec![(1, 0, true, false)],
            ),
            // Folded protected route: nothing falls through by case.
            (
                vec![
                    ("/api/admin/**", None, false, true),
                    ("/**", None, true, false),
                ],
                vec![],
            ),
            // Method fall-through.
            (
                vec![
                    ("/api/admin/**", Some(&["GET"]), false, true),
                    ("/api/**", None, true, false),
                ],
                vec![(1, 0, false, true)],
            ),
            (
                vec![
                    ("/api/admin/**", Some(&["GET"]), true, true),
                    ("/api/**", Some(&["GET", "POST"]), true, false),
                ],
                vec![(1, 0, true, true)],
            ),
            // The public route pins the letters: /Api/... misses both.
            (
                vec![
                    ("/api/**", None, true, true),
                    ("/api/**", Some(&["GET"]), true, false),
                ],
                vec![],
            ),
            // A case-insensitive public prefix catches /API/...
            (
                vec![
                    ("/api/**", None, true, true),
                    ("/api/**", None, false, false),
                ],
                vec![(1, 0, true, false)],
            ),
            // No letters to vary; the public route does not cover the protected one.
            (
                vec![
                    ("/v1/**", None, true, true),
                    ("/1/**", None, true, true),
                    ("/1/**", None, true, false),
                    ("/other/**", None, true, false),
                ],
                vec![],
            ),
            // Public before protected is shadowing, not fall-through.
            (
                vec![("/**", None, true, false), ("/api/**", None, true, true)],
                vec![],
            ),
            // Two protected routes, one catch-all: both reported.
            (
                vec![
                    ("/admin/**", None, true, true),
                    ("/ops/*", Some(&["GET"]), false, true),
                    ("/**", None, true, false),
                ],
                vec![(2, 0, true, false), (2, 1, false, true)],
            ),
        ];
        for (routes, want) in cases {
            let keys: Vec<RouteKey> = routes
                .iter()
                .map(|(p, m, cs, _)| RouteKey {
                    case_sensitive: *cs,
                    ..key(p, *m, None)
                })
                .collect();
            let protected: Vec<bool> = routes.iter().map(|r| r.3).collect();
            let got: Vec<Found> = RouteTable::new(keys)
                .fall_through(&protected)
                .into_iter()
                .map(|f| (f.public, f.protected, f.by_case, f.by_method))
                .collect();
            assert_eq!(got, want, "{routes:?}");
        }
    }

    #[test]
    fn fall_through_needs_a_matching_host() {
        let keys = vec![
            key("/admin/**", None, Some("a.example")),
            key("/**", None, Some("b.example")),
            key("/**", None, Some("a.example")),
            key("/**", None, None),
        ];
        let got: Vec<usize> = RouteTable::new(keys)
            .fall_through(&[true, false, false, false])
            .into_iter()
            .map(|f| f.public)
            .collect();
        assert_eq!(got, vec![2, 3]);
    }
}
