# Kenward-Roger reference for tests/test_mmrm.py::test_kenward_roger_matches_r_pbkrtest.
#
# A compound-symmetry MMRM with a positive correlation is the random-intercept model, so
# R lme4 + pbkrtest (Halekoh & Hojsgaard 2014) give Kenward-Roger standard errors and df
# for the full fev_data model FEV1 ~ RACE + SEX + ARMCD * AVISIT (unbalanced: 537 of 800
# visits observed), in lme4's variance components (sigma_u^2, sigma_e^2), which are
# SAS's CS parameters. Run from the repository root:
#
#   Rscript tests/reference/mmrm/kr_pbkrtest.R
#
# R 4.2.2, lme4 1.1-31, pbkrtest 0.5.2 (Debian bookworm r-cran-lme4, r-cran-pbkrtest).
suppressPackageStartupMessages({
  library(lme4)
  library(pbkrtest)
})
fev <- read.csv("tests/reference/mmrm/fev_data.csv")
fev <- fev[!is.na(fev$FEV1), ]
fit <- lmer(FEV1 ~ RACE + SEX + ARMCD * AVISIT + (1 | USUBJID), data = fev, REML = TRUE)
beta <- fixef(fit)
v_model <- as.matrix(vcov(fit))
v_kr <- as.matrix(vcovAdj(fit))
p <- length(beta)
contrasts <- diag(p)
rownames(contrasts) <- names(beta)
# TRT - PBO at each visit: the ARMCD main effect plus the visit's interaction.
trt <- which(names(beta) == "ARMCDTRT")
for (v in c("VIS2", "VIS3", "VIS4")) {
  l <- numeric(p)
  l[trt] <- 1
  l[which(names(beta) == paste0("ARMCDTRT:AVISIT", v))] <- 1
  contrasts <- rbind(contrasts, l)
  rownames(contrasts)[nrow(contrasts)] <- paste0("TRT-PBO@", v)
}
out <- data.frame(
  name = rownames(contrasts),
  estimate = as.vector(contrasts %*% beta),
  se_model = sqrt(diag(contrasts %*% v_model %*% t(contrasts))),
  se_kr = sqrt(diag(contrasts %*% v_kr %*% t(contrasts))),
  df_kr = apply(contrasts, 1, function(l) get_Lb_ddf(fit, matrix(l, nrow = 1)))
)
vc <- as.data.frame(VarCorr(fit))
attr(out, "sigma_u2") <- vc$vcov[1]
write.csv(out, "tests/reference/mmrm/kr_pbkrtest.csv", row.names = FALSE)
cat(sprintf("sigma_u^2 %.6f sigma_e^2 %.6f REML -2logL %.6f\n", vc$vcov[1], vc$vcov[2],
            -2 * as.numeric(logLik(fit))))
print(out, digits = 10)
