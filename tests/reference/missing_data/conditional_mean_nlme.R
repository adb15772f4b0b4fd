# Reference values for tests/test_missing_data.py::test_conditional_mean_matches_an_independent_r_implementation
# R 4.2.2 with nlme (Debian r-base-core, r-cran-nlme). Run from the repository root:
#   Rscript tests/reference/missing_data/conditional_mean_nlme.R
# trial.csv is tests/test_missing_data.py::simulate() (120 patients, MAR dropout; change NA
# where the visit was missed). The imputation model, written independently of the
# package: nlme::gls with an unstructured covariance (corSymm + varIdent), REML, then the
# conditional mean of the missing changes under MAR, J2R, CR and CIR (Carpenter, Roger &
# Kenward 2013; Wolbers et al. 2022), then ANCOVA of the week-4 change on arm + baseline.
library(nlme)
d <- read.csv("tests/reference/missing_data/trial.csv")
visits <- c("week1", "week2", "week4")
d$visit <- factor(d$visit, levels = visits)
d$arm <- factor(d$arm, levels = c("a", "b"))
d$t <- as.integer(d$visit)
d <- d[order(d$patient_id, d$t), ]
obs <- d[!is.na(d$change), ]
fit <- gls(change ~ visit * (baseline + arm), data = obs,
           correlation = corSymm(form = ~ t | patient_id),
           weights = varIdent(form = ~ 1 | visit), method = "REML",
           control = glsControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-12,
                                msTol = 1e-12))
complete <- names(which(table(obs$patient_id) == 3))[1]
S <- as.matrix(getVarCov(fit, individual = complete))
b <- coef(fit)
f <- ~ visit * (baseline + arm)
own <- matrix(model.matrix(f, d) %*% b, ncol = 3, byrow = TRUE)
dref <- d
dref$arm <- factor("a", levels = c("a", "b"))
ref <- matrix(model.matrix(f, dref) %*% b, ncol = 3, byrow = TRUE)
y <- matrix(d$change, ncol = 3, byrow = TRUE)
patients <- d[d$t == 1, ]
treated <- patients$arm == "b"
for (strategy in c("mar", "j2r", "cr", "cir")) {
  imputed <- y
  for (i in seq_len(nrow(y))) {
    o <- !is.na(y[i, ])
    if (all(o)) next
    k <- if (any(o)) max(which(o)) else 0
    mu <- own[i, ]
    if (treated[i] && strategy != "mar") {
      after <- seq_len(3) > k
      if (strategy == "j2r") mu[after] <- ref[i, after]
      if (strategy == "cr") mu <- ref[i, ]
      if (strategy == "cir") {
        shift <- if (k > 0) own[i, k] - ref[i, k] else 0
        mu[after] <- ref[i, after] + shift
      }
    }
    m <- !o
    if (any(o)) {
      imputed[i, m] <- mu[m] + S[m, o, drop = FALSE] %*% solve(S[o, o, drop = FALSE],
                                                                y[i, o] - mu[o])
    } else {
      imputed[i, m] <- mu[m]
    }
  }
  ancova <- lm(imputed[, 3] ~ patients$arm + patients$baseline)
  cat(sprintf("%s %.10f\n", strategy, coef(ancova)[2]))
}
