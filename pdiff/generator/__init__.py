"""What generates: the parameter normalizer, autoencoders, denoisers, the diffusion process and its
samplers, latent whitening, sampling, and the cheap baseline generators. Imports core and zoo."""
