"""Working in the generator's latent space: synthesis from one style per layer (W+) and edits
(``synthesis``), closed-form edit directions (``sefa``) and fitting latents to images
(``projection``). The files these read and write are ``files/latents.py``'s."""
