# Reference values for tests/test_effect_sizes.py.
#
# Run from the repository root:
#   Rscript tests/reference/effect_sizes/effectsize_reference.R
# Writes, next to this script:
#   datasets.csv            the input data (dataset, sample, position, value)
#   effectsize_values.csv   dataset, measure, estimate, ci_low, ci_high, source
#
# Sources:
#   "effectsize"  R package effectsize (version recorded in the CSV): cohens_d,
#                 hedges_g, glass_delta (independent) and cohens_d(paired = TRUE) (d_z).
#                 Its CIs invert the noncentral t with optim(), accurate to ~1e-4.
#   "uniroot"     the same noncentral-t inversion solved with uniroot() to 1e-12, to
#                 pin our brentq solution tightly.
#   "formula"     d_av, d_rm, d_b and their normal-approximation CIs written out in base
#                 R from the formulas in docs/references.md (Lakens 2013; Algina & Keselman
#                 2003; Becker 1988), because the installed effectsize (0.8.3) predates
#                 repeated_measures_d() (added in 0.8.7).
# R warns "full precision may not have been achieved in pnt" while uniroot() probes
# noncentralities far from the root; the roots themselves are accurate.
suppressPackageStartupMessages(library(effectsize))

out_dir <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))
es_version <- as.character(packageVersion("effectsize"))

# x is the first sample (paired: baseline), y the second (paired: follow-up).
datasets <- list(
  # Lakens 2013, Front Psychol 4:863, movie ratings of 10 raters.
  lakens_movies = list(
    x = c(9, 7, 8, 9, 8, 9, 9, 10, 9, 9),
    y = c(9, 6, 7, 8, 7, 9, 8, 8, 8, 7),
    paired = TRUE
  ),
  # Invented GAD-7 totals, baseline and week 4 of 12 patients.
  gad7_prepost = list(
    x = c(15, 12, 18, 14, 16, 11, 19, 13, 17, 10, 21, 14),
    y = c(6, 9, 10, 5, 12, 8, 7, 11, 4, 9, 13, 3),
    paired = TRUE
  ),
  # Invented change scores of two unequal arms (x: 8 ketamine, y: 13 placebo).
  change_unequal = list(
    x = c(-9, -3, -8, -12, -6, -10, -2, -7),
    y = c(-4, -3, 0, -6, -2, 1, -5, -3, -1, -7, 2, -4, -2),
    paired = FALSE
  ),
  # Invented small samples with the second mean higher (negative effect).
  negative_small = list(
    x = c(3.1, 4.2, 2.8, 3.9, 3.5),
    y = c(4.4, 5.1, 3.9, 4.8, 5.6, 4.0),
    paired = FALSE
  )
)

ncp_ci_uniroot <- function(t, df, level = 0.95) {
  a <- 1 - level
  f <- function(ncp, p) pt(t, df, ncp) - p
  lo <- uniroot(f, c(t - 20, t + 20), p = 1 - a / 2, tol = 1e-13)$root
  hi <- uniroot(f, c(t - 20, t + 20), p = a / 2, tol = 1e-13)$root
  c(lo, hi)
}
J <- function(df) exp(lgamma(df / 2) - log(sqrt(df / 2)) - lgamma((df - 1) / 2))

rows <- list()
add <- function(dataset, measure, est, lo, hi, source) {
  rows[[length(rows) + 1]] <<- data.frame(
    dataset = dataset, measure = measure, estimate = est, ci_low = lo, ci_high = hi,
    source = source
  )
}
data_rows <- list()
for (name in names(datasets)) {
  d <- datasets[[name]]
  x <- d$x
  y <- d$y
  data_rows[[length(data_rows) + 1]] <- rbind(
    data.frame(dataset = name, sample = "x", position = seq_along(x), value = x),
    data.frame(dataset = name, sample = "y", position = seq_along(y), value = y)
  )
  src <- paste("effectsize", es_version)
  # Independent-groups measures (for paired data too: Lakens reports d_s for the movies).
  r1 <- cohens_d(x, y, ci = 0.95)
  add(name, "cohen_d", r1$Cohens_d, r1$CI_low, r1$CI_high, src)
  r2 <- hedges_g(x, y, ci = 0.95)
  add(name, "hedges_g", r2$Hedges_g, r2$CI_low, r2$CI_high, src)
  r3 <- glass_delta(x, y, ci = 0.95)
  add(name, "glass_delta", r3$Glass_delta, r3$CI_low, r3$CI_high, src)
  n1 <- length(x)
  n2 <- length(y)
  sp <- sqrt(((n1 - 1) * var(x) + (n2 - 1) * var(y)) / (n1 + n2 - 2))
  dd <- (mean(x) - mean(y)) / sp
  hn <- sqrt(1 / n1 + 1 / n2)
  ci <- ncp_ci_uniroot(dd / hn, n1 + n2 - 2) * hn
  add(name, "cohen_d", dd, ci[1], ci[2], "uniroot")
  jj <- J(n1 + n2 - 2)
  add(name, "hedges_g", dd * jj, ci[1] * jj, ci[2] * jj, "uniroot")
  gd <- (mean(x) - mean(y)) / sd(y)
  hg <- sqrt(1 / n2 + var(x) / (n1 * var(y)))
  ci <- ncp_ci_uniroot(gd / hg, n2 - 1) * hg
  add(name, "glass_delta", gd, ci[1], ci[2], "uniroot")
  if (d$paired) {
    n <- length(x)
    r4 <- cohens_d(x, y, paired = TRUE, ci = 0.95)
    add(name, "d_z", r4$Cohens_d, r4$CI_low, r4$CI_high, src)
    dz <- mean(x - y) / sd(x - y)
    ci <- ncp_ci_uniroot(dz * sqrt(n), n - 1) / sqrt(n)
    add(name, "d_z", dz, ci[1], ci[2], "uniroot")
    z <- qnorm(0.975)
    r <- cor(x, y)
    s_av <- sqrt((var(x) + var(y)) / 2)
    dav <- mean(x - y) / s_av
    se <- sqrt(var(x - y) / n) / s_av
    add(name, "d_av", dav, dav - z * se, dav + z * se, "formula")
    drm <- dz * sqrt(2 * (1 - r))
    se <- sqrt((1 / n + drm^2 / (2 * n)) * 2 * (1 - r))
    add(name, "d_rm", drm, drm - z * se, drm + z * se, "formula")
    db <- mean(x - y) / sd(x)
    se <- sqrt(2 * (1 - r) / n + db^2 / (2 * n))
    add(name, "d_b", db, db - z * se, db + z * se, "formula")
  }
}
values <- do.call(rbind, rows)
write.csv(do.call(rbind, data_rows), file.path(out_dir, "datasets.csv"), row.names = FALSE)
num <- c("estimate", "ci_low", "ci_high")
values[num] <- lapply(values[num], signif, digits = 12)
write.csv(values, file.path(out_dir, "effectsize_values.csv"), row.names = FALSE)
cat("wrote", nrow(values), "reference values with effectsize", es_version, "\n")
