# Reference values for tests/test_mmrm.py from R nlme::gls (and emmeans) on fev_data.
#
# Run from the repository root:
#   Rscript tests/reference/mmrm/nlme_reference.R
# It reads /work/shared/reference-data/fev_data.csv (or the path given as the first
# argument) and writes tests/reference/mmrm/nlme_reference.json. The tests only read the
# JSON, so they do not need R.
#
# Each model is FEV1 ~ RACE + SEX + ARMCD * AVISIT fitted by REML, with the residual
# covariance of one of the structures fit_mmrm offers:
#   cs   corCompSymm                                  (constant variance)
#   csh  corCompSymm + varIdent(~ 1 | AVISIT)         (a variance per visit)
#   ar1  corAR1(~ VISITN | USUBJID)                   (lag = visit number, not row order)
#   ar1h corAR1(~ VISITN | USUBJID) + varIdent(~ 1 | AVISIT)
#   us   corSymm(~ VISITN | USUBJID) + varIdent(~ 1 | AVISIT), a cross-check of the SAS
#        PROC MIXED listing quoted in REFERENCES.md.
# nlme's REML log-likelihood differs from SAS's by 0.5 * log det(X'X) (nlme adds it), so
# the script also writes log det(X'X) to let the tests compare on the SAS scale.

suppressPackageStartupMessages({
  library(nlme)
  library(emmeans)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
path <- if (length(args) >= 1) args[1] else "/work/shared/reference-data/fev_data.csv"
fev <- read.csv(path, stringsAsFactors = FALSE)
fev <- fev[!is.na(fev$FEV1), ]
for (v in c("USUBJID", "AVISIT", "ARMCD", "RACE", "SEX")) fev[[v]] <- factor(fev[[v]])

# The calls spell out the formula and the structures (rather than passing objects bound
# to names) because emmeans re-evaluates the call for its Satterthwaite df, and crashed
# R 4.2.2 when it had to look those names up.
ctrl <- glsControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-10, msTol = 1e-10)
models <- list(
  cs = gls(FEV1 ~ RACE + SEX + ARMCD * AVISIT, fev,
           correlation = corCompSymm(form = ~ 1 | USUBJID),
           method = "REML", control = ctrl),
  csh = gls(FEV1 ~ RACE + SEX + ARMCD * AVISIT, fev,
            correlation = corCompSymm(form = ~ 1 | USUBJID),
            weights = varIdent(form = ~ 1 | AVISIT), method = "REML", control = ctrl),
  ar1 = gls(FEV1 ~ RACE + SEX + ARMCD * AVISIT, fev,
            correlation = corAR1(form = ~ VISITN | USUBJID),
            method = "REML", control = ctrl),
  ar1h = gls(FEV1 ~ RACE + SEX + ARMCD * AVISIT, fev,
             correlation = corAR1(form = ~ VISITN | USUBJID),
             weights = varIdent(form = ~ 1 | AVISIT), method = "REML", control = ctrl),
  us = gls(FEV1 ~ RACE + SEX + ARMCD * AVISIT, fev,
           correlation = corSymm(form = ~ VISITN | USUBJID),
           weights = varIdent(form = ~ 1 | AVISIT), method = "REML", control = ctrl)
)

# A subject observed at all four visits, so getVarCov returns the full 4 x 4 matrix.
complete <- names(which(table(fev$USUBJID) == 4))[1]
X <- model.matrix(FEV1 ~ RACE + SEX + ARMCD * AVISIT, fev)
logdet_xtx <- as.numeric(determinant(crossprod(X), logarithm = TRUE)$modulus)

describe <- function(fit) {
  V <- unclass(getVarCov(fit, individual = complete))
  emm <- emmeans(fit, ~ ARMCD | AVISIT, mode = "satterthwaite")
  lsm <- as.data.frame(summary(emm))
  diffs <- as.data.frame(summary(contrast(emm, "trt.vs.ctrl"), infer = TRUE))
  list(
    coefficients = data.frame(term = names(coef(fit)), estimate = unname(coef(fit)),
                              se = unname(sqrt(diag(vcov(fit))))),
    loglik_nlme = as.numeric(logLik(fit)),
    covariance = unname(V),
    lsmeans = data.frame(ARMCD = as.character(lsm$ARMCD), AVISIT = as.character(lsm$AVISIT),
                         estimate = lsm$emmean, se = lsm$SE, df = lsm$df),
    pairwise = data.frame(AVISIT = as.character(diffs$AVISIT),
                          contrast = as.character(diffs$contrast),
                          estimate = diffs$estimate, se = diffs$SE, df = diffs$df)
  )
}

out <- list(
  source = sprintf("R %s.%s, nlme %s, emmeans %s; tests/reference/mmrm/nlme_reference.R",
                   R.version$major, R.version$minor, packageVersion("nlme"),
                   packageVersion("emmeans")),
  formula = "FEV1 ~ RACE + SEX + ARMCD * AVISIT",
  n_obs = nrow(fev),
  visits = levels(fev$AVISIT),
  logdet_xtx = logdet_xtx,
  models = lapply(models, describe)
)
write_json(out, "tests/reference/mmrm/nlme_reference.json", digits = NA, pretty = TRUE)
cat("wrote tests/reference/mmrm/nlme_reference.json\n")
